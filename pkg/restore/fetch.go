package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/progress"
)

// fetch downloads one file into a temporary file next to its final place
// and verifies it; the temporary name starts with a dot and ends in
// ".s3bak-tmp", so nothing mistakes it for the real file.
func (r *restorer) fetch(ctx context.Context, f manifest.File) (string, error) {
	final := filepath.Join(r.target, filepath.FromSlash(f.Path))
	dir := filepath.Dir(final)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(final)+".*.s3bak-tmp")
	if err != nil {
		return "", fmt.Errorf("create temporary file: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := r.download(ctx, f, tmp); err != nil {
		return "", err
	}
	if err := tmp.Chmod(f.Mode.Perm()); err != nil {
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		return "", fmt.Errorf("sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Chtimes(tmp.Name(), f.ModTime, f.ModTime); err != nil {
		return "", err
	}
	ok = true
	return tmp.Name(), nil
}

// download streams the object through the decoder into w and checks size
// and SHA-256 of what came out.
func (r *restorer) download(ctx context.Context, f manifest.File, w io.Writer) error {
	key := r.root + f.Key
	if f.Size == 0 && f.StoredSize == 0 {
		return r.verify(f, sha256.New(), 0, key)
	}
	body, err := r.c.Get(ctx, key, 0, 0)
	if err != nil {
		return fmt.Errorf("object %s: %w", key, err)
	}
	defer body.Close()
	dec, err := chunk.NewReader(body, f.Compression)
	if err != nil {
		return err
	}
	defer dec.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h, progressWriter{r.opts.Progress}), io.LimitReader(dec, f.Size+1))
	if errors.Is(err, chunk.ErrCorrupt) {
		return fmt.Errorf("%w: object %s: %w", ErrVerify, key, err)
	}
	if err != nil {
		return fmt.Errorf("object %s: %w", key, err)
	}
	return r.verify(f, h, n, key)
}

func (r *restorer) verify(f manifest.File, h interface{ Sum([]byte) []byte }, n int64, key string) error {
	if n != f.Size {
		return fmt.Errorf("%w: object %s decodes to %d bytes, the manifest records %d", ErrVerify, key, n, f.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("%w: object %s: SHA-256 %s, the manifest records %s (the object is corrupt)", ErrVerify, key, got, f.SHA256)
	}
	return nil
}

type progressWriter struct{ p progress.Counter }

func (p progressWriter) Write(b []byte) (int, error) { p.p.Add(int64(len(b))); return len(b), nil }
