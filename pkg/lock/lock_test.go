package lock

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/miniotest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

var client *transfer.Client

func TestMain(m *testing.M) {
	os.Exit(miniotest.Main(m, func(*miniotest.Server) (err error) {
		client, err = transfer.New(context.Background(), transfer.Options{Bucket: "lock"})
		return err
	}, "lock"))
}

func TestSecondHolderIsRefusedAndNamed(t *testing.T) {
	ctx := context.Background()
	key := t.Name() + "/lock.json"
	a, err := Acquire(ctx, client, key, Info{Op: "backup", Host: "node-a", PID: 11, Backup: "20261125T000000Z"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(ctx, client, key, Info{Op: "purge", Host: "node-b"}, Options{})
	var held *HeldError
	if !errors.As(err, &held) {
		t.Fatalf("second Acquire: %v, want *HeldError", err)
	}
	if held.Holder.Host != "node-a" || held.Holder.PID != 11 || held.Holder.Op != "backup" {
		t.Fatalf("holder %+v", held.Holder)
	}
	for _, want := range []string{"node-a", "pid 11", "--break-lock"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := Acquire(ctx, client, key, Info{Op: "purge"}, Options{})
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if info, err := Read(ctx, client, key); err != nil || info != nil {
		t.Fatalf("after release Read = %v, %v; want nothing", info, err)
	}
}

func TestExpiredLeaseIsTakenOver(t *testing.T) {
	ctx := context.Background()
	key := t.Name() + "/lock.json"
	past := func() time.Time { return time.Now().Add(-time.Hour) }
	if _, err := Acquire(ctx, client, key, Info{Op: "backup", Host: "dead"}, Options{Lease: time.Minute, Now: past}); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(ctx, client, key, Info{Op: "backup", Host: "alive"}, Options{})
	if err != nil {
		t.Fatalf("expired lease not taken over: %v", err)
	}
	if info, _ := Read(ctx, client, key); info == nil || info.Host != "alive" {
		t.Fatalf("lock now %+v", info)
	}
	_ = l.Release(ctx)
}

func TestBreakLockAndTheLoserStops(t *testing.T) {
	ctx := context.Background()
	key := t.Name() + "/lock.json"
	a, err := Acquire(ctx, client, key, Info{Op: "backup", Host: "a"}, Options{Lease: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	actx := a.Keep(ctx)
	b, err := Acquire(ctx, client, key, Info{Op: "backup", Host: "b"}, Options{Break: true})
	if err != nil {
		t.Fatalf("--break-lock: %v", err)
	}
	select {
	case <-actx.Done():
		if !errors.Is(context.Cause(actx), ErrLost) {
			t.Fatalf("cause %v, want ErrLost", context.Cause(actx))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the run whose lock was broken did not stop")
	}
	if err := a.Release(ctx); !errors.Is(err, ErrLost) {
		t.Fatalf("loser's Release: %v, want ErrLost (and the lock left alone)", err)
	}
	if info, _ := Read(ctx, client, key); info == nil || info.Host != "b" {
		t.Fatalf("lock now %+v, want b's", info)
	}
	_ = b.Release(ctx)
}

func TestKeepRenewsTheLease(t *testing.T) {
	ctx := context.Background()
	key := t.Name() + "/lock.json"
	a, err := Acquire(ctx, client, key, Info{Op: "backup"}, Options{Lease: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	first := a.Info().Expires
	actx := a.Keep(ctx)
	deadline := time.Now().Add(5 * time.Second)
	for a.Info().Expires.Equal(first) {
		if time.Now().After(deadline) {
			t.Fatal("lease never renewed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if actx.Err() != nil {
		t.Fatalf("context ended: %v", context.Cause(actx))
	}
	if _, err := Acquire(ctx, client, key, Info{Op: "purge"}, Options{}); err == nil {
		t.Fatal("renewed lock was taken")
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestLockOfADeadProcessOfThisHostIsTakenOver(t *testing.T) {
	ctx := context.Background()
	key := t.Name() + "/lock.json"
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if _, err := Acquire(ctx, client, key, Info{Op: "backup", Host: host, PID: dead.Process.Pid}, Options{}); err != nil {
		t.Fatal(err)
	}
	// The same pid on another host proves nothing: its lease decides.
	other := t.Name() + "/other.json"
	if _, err := Acquire(ctx, client, other, Info{Op: "backup", Host: "elsewhere", PID: dead.Process.Pid}, Options{}); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(ctx, client, key, Info{Op: "backup"}, Options{})
	if err != nil {
		t.Fatalf("lock of a dead local process not taken over: %v", err)
	}
	_ = l.Release(ctx)
	var held *HeldError
	if _, err := Acquire(ctx, client, other, Info{Op: "backup"}, Options{}); !errors.As(err, &held) {
		t.Fatalf("lock of another host taken: %v", err)
	}
}
