// Package browser holds end-to-end tests that drive a real headless Chromium
// through the whole request path: browser → Envoy emulator → corsproc →
// upstream. The package has no code outside its tests.
//
// Chromium is found as `chromium` on PATH or at /usr/bin/chromium. Without it
// the tests skip, loudly, unless CORSPROC_REQUIRE_BROWSER=1 is set (as CI
// does), in which case they fail. `make test` installs Chromium when it runs
// as root.
package browser
