// Command lambdazip writes a Lambda deployment package: one executable, stored as "bootstrap"
// at the root of a zip with its Unix mode kept (provided.al2023 runs /var/task/bootstrap).
// make build uses it where the zip command is not installed.
//
//	go run ./lambdazip OUT.zip path/to/bootstrap
package main

import (
	"archive/zip"
	"fmt"
	"io"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: lambdazip OUT.zip BOOTSTRAP")
		os.Exit(2)
	}
	if err := write(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "lambdazip:", err)
		os.Exit(1)
	}
}

func write(out, bootstrap string) (err error) {
	in, err := os.Open(bootstrap)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	hdr, err := zip.FileInfoHeader(info) // keeps the mode bits, so bootstrap stays executable
	if err != nil {
		return err
	}
	hdr.Name, hdr.Method = "bootstrap", zip.Deflate

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	zw := zip.NewWriter(f)
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, in); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return zw.Close()
}
