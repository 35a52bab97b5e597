package secrets

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sei-io/jira-connect/internal/apperr"
)

// DevKeyFile is the file name LoadOrCreateDevKey keeps the spec in.
const DevKeyFile = "encryption.key"

// LoadOrCreateDevKey returns the key spec stored in dir/encryption.key,
// creating the directory (0700) and a fresh spec (file 0600) when the file
// does not exist. It is meant for development and single-machine installs
// where no key is configured; production passes the spec in configuration.
//
// It refuses a key file that group or others can read or write, as ssh
// does for private keys. Two processes racing to create the file end up with
// the same key: the file appears atomically and the loser reads the
// winner's.
func LoadOrCreateDevKey(dir string) (spec string, created bool, err error) {
	path := filepath.Join(dir, DevKeyFile)
	spec, err = loadKeyFile(path)
	if err == nil {
		return spec, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, apperr.Wrap(err, apperr.Internal, "cannot create key directory %s", dir)
	}
	spec, err = GenerateKeySpec()
	if err != nil {
		return "", false, err
	}
	if err := writeNewFile(path, []byte(spec+"\n")); err != nil {
		if errors.Is(err, fs.ErrExist) {
			spec, err = loadKeyFile(path)
			return spec, false, err
		}
		return "", false, apperr.Wrap(err, apperr.Internal, "cannot write key file %s", path)
	}
	return spec, true, nil
}

func loadKeyFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "", apperr.Wrap(err, apperr.Internal, "cannot read key file %s", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", apperr.New(apperr.Internal,
			"key file %s has permissions %#o; it must not be accessible by group or others (chmod 600)", path, perm).
			WithReason("key_file_permissions")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", apperr.Wrap(err, apperr.Internal, "cannot read key file %s", path)
	}
	spec := strings.TrimSpace(string(b))
	if _, err := ParseKeyRing(spec); err != nil {
		return "", apperr.Wrap(err, apperr.Internal, "key file %s is invalid: %s", path, apperr.As(err).Message)
	}
	return spec, nil
}

// writeNewFile writes data to a temporary file in the same directory and
// links it into place, so path never exists half-written and an existing
// file is never replaced (fs.ErrExist instead).
func writeNewFile(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }()
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fs.ErrExist
		}
		// Some file systems have no hard links; fall back to exclusive create.
		return writeExclusive(path, data)
	}
	return nil
}

func writeExclusive(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
