//go:build unix

package tlsreload

import (
	"os"
	"syscall"
)

// inode returns fi's inode number, 0 when unknown.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
