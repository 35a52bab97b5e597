package app

import (
	"net/http"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/secrets"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// TestReplicasShareInstallations runs two replicas on one PostgreSQL
// database. A reinstall seen by replica A must stop the old secret on
// replica B too (NOTIFY drops B's cached copy), and the new secret must work
// on B straight away.
func TestReplicasShareInstallations(t *testing.T) {
	storetest.RequirePostgres(t)
	url := storetest.URL(t, store.DialectPostgres)
	spec, _ := secrets.GenerateKeySpec()
	env := map[string]string{"ENCRYPTION_KEYS": spec}
	dbA := storetest.OpenUnmigrated(t, url, store.Options{})
	if err := dbA.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	a := start(t, dbA, "", env)
	b := start(t, storetest.OpenUnmigrated(t, url, store.Options{}), "", env)

	s := a.installed()
	remember(s.SharedSecret)
	hookB := b.base + "/webhooks/jira/issue"
	send := func() int {
		tok, err := s.Token(http.MethodPost, hookB, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		resp, err := b.do(http.MethodPost, hookB, "JWT "+tok, issueEventBody)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := send(); got != http.StatusNoContent {
		t.Fatalf("replica B refused the installed site: %d", got)
	}

	oldSecret := s.SharedSecret
	a.expect(s.Reinstall(ctx))(http.StatusNoContent)
	remember(s.SharedSecret)
	// The new secret works on B within a second: the NOTIFY drops B's copy
	// in milliseconds, and failing that a signature mismatch re-reads (at
	// most once a second per site).
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got := send()
		if got == http.StatusNoContent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new secret refused on replica B for 2s: %d", got)
		}
	}
	// The old secret stops on B once the notification lands: milliseconds.
	deadline := time.Now().Add(2 * time.Second)
	for {
		resp, err := b.webhookSignedWith(s, oldSecret, b.base)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("old secret still accepted by replica B after 2s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
