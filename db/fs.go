package db

import (
	"fmt"
	"io/fs"
)

func fsSub(f fs.FS, dir string) (fs.FS, error) {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		return nil, fmt.Errorf("open migrations: %w", err)
	}
	return sub, nil
}
