// Package lock keeps two s3bak runs from working on the same node at once.
// The lock is an object created with S3's conditional write (If-None-Match:
// *), so exactly one creator wins without any other coordination service; it
// carries a lease that its holder renews, so a crashed holder's lock expires
// instead of blocking the node forever.
package lock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/s3bak/s3bak/pkg/transfer"
)

// Key is the lock's key relative to a node's root.
const Key = "lock.json"

// DefaultLease is how long a lock lives without renewal. Renewal happens at
// a third of it, so two missed renewals in a row are survived.
const DefaultLease = 10 * time.Minute

// Info is what the lock object says about its holder.
type Info struct {
	Op      string    `json:"op"` // backup, purge, index
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Tag     string    `json:"tag,omitempty"`
	Backup  string    `json:"backup,omitempty"` // the backup id being written
	Token   string    `json:"token"`
	Started time.Time `json:"started"`
	Expires time.Time `json:"expires"`
}

func (i *Info) String() string {
	s := fmt.Sprintf("%s by %s pid %d since %s", i.Op, i.Host, i.PID, i.Started.UTC().Format(time.RFC3339))
	if i.Backup != "" {
		s += " (backup " + i.Backup + ")"
	}
	return s
}

// Dead reports whether the holder is known to be gone: it ran on this
// host and its process no longer exists. A lock of another host is never
// known dead; its lease decides.
func (i *Info) Dead() bool {
	host, err := os.Hostname()
	if err != nil || host != i.Host || i.PID <= 0 {
		return false
	}
	return syscall.Kill(i.PID, 0) == syscall.ESRCH
}

// HeldError means another run holds the lock and its lease is live.
type HeldError struct {
	Key    string
	Holder Info
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("node is locked by %s, lease until %s (s3://…/%s): wait for it to finish; if that run is dead, rerun with --break-lock",
		e.Holder.String(), e.Holder.Expires.UTC().Format(time.RFC3339), e.Key)
}

// ErrLost means the lock was taken away (broken by another run) while held.
var ErrLost = errors.New("lock lost")

// Options configure Acquire.
type Options struct {
	Lease time.Duration
	// Break takes the lock even when its lease is live.
	Break  bool
	Logger *slog.Logger
	Now    func() time.Time
}

// Lock is a held lock.
type Lock struct {
	c    *transfer.Client
	key  string
	opts Options

	mu   sync.Mutex
	info Info
	etag string

	fenceMu sync.Mutex

	stop    chan struct{}
	done    chan struct{}
	keeping bool
}

// Acquire takes the lock at key for the run info describes. A lock whose
// lease expired, or whose holder was a process of this host that is gone,
// is taken over; a live one is a *HeldError unless Break.
func Acquire(ctx context.Context, c *transfer.Client, key string, info Info, o Options) (*Lock, error) {
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if info.Host == "" {
		info.Host, _ = os.Hostname()
	}
	if info.PID == 0 {
		info.PID = os.Getpid()
	}
	info.Token = newToken()
	info.Started = o.Now().UTC()
	l := &Lock{c: c, key: key, opts: o, info: info}
	for attempt := 0; attempt < 3; attempt++ {
		err := l.write(ctx, transfer.Cond{IfAbsent: true})
		if !errors.Is(err, transfer.ErrExists) {
			return l.started(err)
		}
		cur, etag, err := read(ctx, c, key)
		if errors.Is(err, transfer.ErrNotFound) {
			continue // released between our two requests
		}
		if err != nil {
			return nil, err
		}
		if cur.Token == info.Token {
			// Our own write of unknown outcome (its answers were lost).
			l.mu.Lock()
			l.etag = etag
			l.mu.Unlock()
			return l.started(nil)
		}
		dead, expired := cur.Dead(), !cur.Expires.After(o.Now())
		if !dead && !expired && !o.Break {
			return nil, &HeldError{Key: key, Holder: *cur}
		}
		switch {
		case dead:
			o.Logger.Warn(fmt.Sprintf("taking over the lock: the holder, pid %d on this host, is gone", cur.PID), "holder", cur.String(), "lock", key)
		case expired:
			o.Logger.Warn("taking over the lock: the holder's lease expired at "+cur.Expires.UTC().Format(time.RFC3339)+" (its run died, or lost S3 for longer than the lease)", "holder", cur.String(), "lock", key)
		default:
			o.Logger.Warn("breaking the lock (--break-lock): its holder's lease runs until "+cur.Expires.UTC().Format(time.RFC3339)+"; that run stops at its next renewal", "holder", cur.String(), "lock", key)
		}
		err = l.write(ctx, transfer.Cond{IfMatch: etag})
		if !errors.Is(err, transfer.ErrExists) {
			return l.started(err)
		}
		// Someone else replaced it first: look again.
	}
	return nil, fmt.Errorf("lock %s: it kept changing while being taken; try again", key)
}

func (l *Lock) started(err error) (*Lock, error) {
	if err != nil {
		return nil, fmt.Errorf("take lock: %w", err)
	}
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	return l, nil
}

// write stores the lock with a fresh lease.
func (l *Lock) write(ctx context.Context, cond transfer.Cond) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.info.Expires = l.opts.Now().UTC().Add(l.opts.Lease)
	b, err := json.Marshal(l.info)
	if err != nil {
		return err
	}
	etag, err := l.c.Put(ctx, l.key, b, "application/json", cond)
	if err == nil {
		l.etag = etag
	}
	return err
}

// Info is the holder record as written.
func (l *Lock) Info() Info {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.info
}

// Keep renews the lease until Release and returns a context that is
// cancelled if the lock is lost, so the run stops instead of working on
// unprotected.
func (l *Lock) Keep(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancelCause(ctx)
	l.keeping = true
	go func() {
		defer close(l.done)
		t := time.NewTicker(l.opts.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := l.Fence(ctx); err != nil {
				if errors.Is(err, ErrLost) {
					l.opts.Logger.Error("lock lost: stopping", "lock", l.key, "err", err)
					cancel(err)
					return
				}
				// A renewal that failed on the network is retried at the
				// next tick; the lease outlives two misses, and every
				// commit fences first anyway.
				l.opts.Logger.Warn("renewing the lock failed", "lock", l.key, "err", err)
			}
		}
	}()
	return ctx
}

// Fence proves that the lock is still this run's, and renews its lease, with
// one conditional write on the ETag this run last wrote: S3 refuses it if
// any other run replaced or deleted the lock since, however long this run
// was paused. A run fences before every write only the holder may make (a
// manifest, the index, deletions); a lost lock is ErrLost. A timer cannot
// do this: a process stopped past its lease does not know it was.
func (l *Lock) Fence(ctx context.Context) error {
	l.fenceMu.Lock() // one renewal at a time: each needs the last one's ETag
	defer l.fenceMu.Unlock()
	l.mu.Lock()
	etag := l.etag
	l.mu.Unlock()
	err := l.write(ctx, transfer.Cond{IfMatch: etag})
	if errors.Is(err, transfer.ErrExists) || errors.Is(err, transfer.ErrNotFound) {
		cur, curETag, rerr := read(ctx, l.c, l.key)
		if rerr == nil && cur.Token == l.Info().Token {
			// An earlier renewal landed although its every answer was lost:
			// the lock is still ours, under an ETag we never heard of.
			l.mu.Lock()
			l.etag = curETag
			l.mu.Unlock()
			err = l.write(ctx, transfer.Cond{IfMatch: curETag})
		}
	}
	if errors.Is(err, transfer.ErrExists) || errors.Is(err, transfer.ErrNotFound) {
		holder := "nobody (it was deleted)"
		if cur, _, rerr := read(ctx, l.c, l.key); rerr == nil {
			holder = cur.String()
		}
		return fmt.Errorf("%w: lock %s was taken over; it is now held by %s", ErrLost, l.key, holder)
	}
	if err != nil {
		return fmt.Errorf("renew lock %s: %w", l.key, err)
	}
	return nil
}

// Run is the one choreography of a locked run: take the lock, renew it
// while fn runs, release it. fn gets a context that ends if the lock is
// lost, and the Lock, to Fence before each of its commits. A failure after
// the lock was lost is ErrLost (with fn's own error): the run stopped
// because of it. A fn that returned nil fenced its every commit, so its
// success stands even if the lock was lost after the last one. Releasing is
// best effort: a lock left behind expires with its lease.
func Run(ctx context.Context, c *transfer.Client, key string, info Info, o Options, fn func(ctx context.Context, l *Lock) error) error {
	l, err := Acquire(ctx, c, key, info, o)
	if err != nil {
		return err
	}
	lctx := l.Keep(ctx)
	err = fn(lctx, l)
	if cause := context.Cause(lctx); err != nil && errors.Is(cause, ErrLost) && !errors.Is(err, ErrLost) {
		if errors.Is(err, context.Canceled) {
			err = cause
		} else {
			err = fmt.Errorf("%w (then: %v)", cause, err)
		}
	}
	if rerr := l.Release(context.WithoutCancel(ctx)); rerr != nil {
		l.opts.Logger.Warn("could not release the lock", "lock", key, "err", rerr)
	}
	return err
}

// Release stops renewing and deletes the lock if it is still this run's.
func (l *Lock) Release(ctx context.Context) error {
	select {
	case <-l.stop:
		return nil
	default:
	}
	close(l.stop)
	if l.keeping {
		<-l.done
	}
	cur, _, err := read(ctx, l.c, l.key)
	if errors.Is(err, transfer.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release lock: %w", err)
	}
	if cur.Token != l.Info().Token {
		return fmt.Errorf("release lock %s: %w: it is now held by %s", l.key, ErrLost, cur.String())
	}
	return l.c.Delete(ctx, l.key)
}

// Read returns the current holder, or nil when the node is not locked.
func Read(ctx context.Context, c *transfer.Client, key string) (*Info, error) {
	info, _, err := read(ctx, c, key)
	if errors.Is(err, transfer.ErrNotFound) {
		return nil, nil
	}
	return info, err
}

func read(ctx context.Context, c *transfer.Client, key string) (*Info, string, error) {
	b, etag, err := c.GetSmall(ctx, key, 64<<10)
	if err != nil {
		return nil, "", err
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		// An unreadable lock is treated as expired: it can only be garbage,
		// and a lock nobody can read would block the node forever.
		return &Info{Op: "unreadable lock object"}, etag, nil
	}
	return &info, etag, nil
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
