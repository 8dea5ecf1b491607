package db

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// DiskStatus is how much room the database has and takes.
type DiskStatus struct {
	DatabaseBytes int64  // the database file plus its write-ahead log
	FreeBytes     uint64 // free space available to plaudhook on the database's file system
	TotalBytes    uint64 // size of that file system
}

// DiskStatus reports the database's size and the free space beside it (statfs on its folder).
func (db *DB) DiskStatus() (DiskStatus, error) {
	var st DiskStatus
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(db.Path + suffix); err == nil {
			st.DatabaseBytes += fi.Size()
		}
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(db.Path), &fs); err != nil {
		return st, fmt.Errorf("disk status: %w", err)
	}
	st.FreeBytes = fs.Bavail * uint64(fs.Bsize)
	st.TotalBytes = fs.Blocks * uint64(fs.Bsize)
	return st, nil
}
