package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/s3bak/s3bak/pkg/units"
)

// verifyTree checks that dir holds exactly the files of want, each with its
// size and SHA-256: a tool that lost or damaged a file must not be timed as
// if it had done the work.
func verifyTree(dir string, want map[string]fileSum) error {
	var problems []string
	seen := map[string]bool{}
	var toHash []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		w, ok := want[rel]
		info, ierr := d.Info()
		switch {
		case !ok:
			problems = append(problems, "unexpected file "+rel)
		case ierr != nil || !d.Type().IsRegular():
			problems = append(problems, "not a regular file: "+rel)
		case info.Size() != w.size:
			problems = append(problems, fmt.Sprintf("%s: %d bytes, want %d", rel, info.Size(), w.size))
		default:
			seen[rel] = true
			toHash = append(toHash, rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for rel := range want {
		if !seen[rel] && !hasProblem(problems, rel) {
			problems = append(problems, "missing "+rel)
		}
	}
	problems = append(problems, hashAll(dir, toHash, want)...)
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	n := len(problems)
	if n > 5 {
		problems = append(problems[:5], fmt.Sprintf("… and %d more", n-5))
	}
	return fmt.Errorf("restored tree differs from the source (%s): %s", units.Plural(n, "problem"), strings.Join(problems, "; "))
}

func hasProblem(problems []string, rel string) bool {
	for _, p := range problems {
		if strings.HasPrefix(p, rel+":") {
			return true
		}
	}
	return false
}

// hashAll compares the SHA-256 of every file, on every CPU.
func hashAll(dir string, rels []string, want map[string]fileSum) []string {
	var mu sync.Mutex
	var problems []string
	work := make(chan string)
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Go(func() {
			for rel := range work {
				sum, err := hashFile(filepath.Join(dir, filepath.FromSlash(rel)))
				if err == nil && sum == want[rel].sha {
					continue
				}
				mu.Lock()
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s: %v", rel, err))
				} else {
					problems = append(problems, rel+": SHA-256 differs")
				}
				mu.Unlock()
			}
		})
	}
	for _, rel := range rels {
		work <- rel
	}
	close(work)
	wg.Wait()
	return problems
}

func hashFile(path string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
