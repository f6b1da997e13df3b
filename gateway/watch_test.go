package gateway_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stepgate/stepgate/gateway"
)

// The file watch sees every way a configuration file is replaced in
// practice, once per change however many events it takes, and nothing
// else in the directory.
func TestWatchFile(t *testing.T) {
	const quiet = 50 * time.Millisecond
	write := func(t *testing.T, path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	symlink := func(t *testing.T, target, link string) {
		t.Helper()
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	rename := func(t *testing.T, from, to string) {
		t.Helper()
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the path to watch
		act   func(t *testing.T, dir string, round int)
		want  int32 // calls per round
	}{
		{"written in place", nil, func(t *testing.T, dir string, round int) {
			write(t, filepath.Join(dir, "routes.yaml"), "b")
		}, 1},
		{"an editor's save: written elsewhere, renamed over it", nil, func(t *testing.T, dir string, round int) {
			write(t, filepath.Join(dir, ".routes.yaml.swp"), "b")
			rename(t, filepath.Join(dir, ".routes.yaml.swp"), filepath.Join(dir, "routes.yaml"))
		}, 1},
		{"a burst of writes is one change", nil, func(t *testing.T, dir string, round int) {
			for i := range 10 {
				write(t, filepath.Join(dir, "routes.yaml"), string(rune('a'+i)))
				time.Sleep(quiet / 5)
			}
		}, 1},
		{"removed, then written again", nil, func(t *testing.T, dir string, round int) {
			if round == 0 {
				if err := os.Remove(filepath.Join(dir, "routes.yaml")); err != nil {
					t.Fatal(err)
				}
				return
			}
			write(t, filepath.Join(dir, "routes.yaml"), "b")
		}, 1},
		{"a Kubernetes ConfigMap update swaps ..data", func(t *testing.T, dir string) string {
			// The layout the kubelet makes: routes.yaml -> ..data/routes.yaml,
			// ..data -> a timestamped directory.
			os.Mkdir(filepath.Join(dir, "..2026_01_01_a"), 0o700)
			write(t, filepath.Join(dir, "..2026_01_01_a", "routes.yaml"), "a")
			symlink(t, "..2026_01_01_a", filepath.Join(dir, "..data"))
			symlink(t, "..data/routes.yaml", filepath.Join(dir, "routes.yaml"))
			return filepath.Join(dir, "routes.yaml")
		}, func(t *testing.T, dir string, round int) {
			old, next := "..2026_01_01_"+string(rune('a'+round)), "..2026_01_01_"+string(rune('b'+round))
			os.Mkdir(filepath.Join(dir, next), 0o700)
			write(t, filepath.Join(dir, next, "routes.yaml"), next)
			symlink(t, next, filepath.Join(dir, "..data_tmp"))
			rename(t, filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data"))
			os.RemoveAll(filepath.Join(dir, old))
		}, 1},
		{"another file in the directory", nil, func(t *testing.T, dir string, round int) {
			write(t, filepath.Join(dir, "other.yaml"), "b")
			write(t, filepath.Join(dir, "routes.yaml.bak"), "b")
		}, 0},
		{"a change of mode only", nil, func(t *testing.T, dir string, round int) {
			if err := os.Chmod(filepath.Join(dir, "routes.yaml"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "routes.yaml")
			if tc.setup != nil {
				path = tc.setup(t, dir)
			} else {
				write(t, path, "a")
			}
			var calls atomic.Int32
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := gateway.WatchFile(ctx, path, quiet, slog.New(slog.DiscardHandler), func() { calls.Add(1) }); err != nil {
				t.Fatal(err)
			}
			// Twice: a watch that followed the first file would miss the
			// second change.
			for round := range 2 {
				want := tc.want * int32(round+1)
				tc.act(t, dir, round)
				for deadline := time.Now().Add(5 * time.Second); calls.Load() < want && time.Now().Before(deadline); {
					time.Sleep(10 * time.Millisecond)
				}
				time.Sleep(5 * quiet) // and no more after that
				if got := calls.Load(); got != want {
					t.Fatalf("after change %d, changed was called %d times; want %d", round+1, got, want)
				}
			}
		})
	}
}

func TestWatchFileMissingDirectory(t *testing.T) {
	err := gateway.WatchFile(t.Context(), filepath.Join(t.TempDir(), "gone", "routes.yaml"), time.Millisecond, slog.New(slog.DiscardHandler), func() {})
	if err == nil {
		t.Error("watching a file in a directory that does not exist: nil error; want one")
	}
}
