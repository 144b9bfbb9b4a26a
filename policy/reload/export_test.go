package reload

import "testing"

// DisableWatch turns the watch off for the length of a test, as if every
// event were missed: only SIGHUP and the Interval check reload.
func DisableWatch(t *testing.T) {
	watchDisabled = true
	t.Cleanup(func() { watchDisabled = false })
}
