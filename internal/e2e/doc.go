// Package e2e holds fault tests of the built service: they build
// cmd/connect, run it as a child process against the Jira simulator over
// real HTTP, and break things around it (kill -9 mid-sync, a PostgreSQL
// restart, a storm of 429s), then compare the database with the
// simulator's ground truth. There is no code here outside _test files.
// The tests are slow: `go test -short` skips them.
package e2e
