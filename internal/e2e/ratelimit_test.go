package e2e

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/jira"
	"github.com/sei-io/jira-connect/internal/jirasim"
	"github.com/sei-io/jira-connect/internal/store"
	"github.com/sei-io/jira-connect/internal/store/storetest"
)

// TestRateLimitStorm syncs a site behind a token bucket of 20 requests a
// second with a burst of 5, Jira Cloud's burst limiter in miniature: the
// sync runs into 429s from its first second (Retry-After: 1, the bucket's
// wait rounded up to whole seconds as Jira does), and must still finish in
// its first run, equal to the ground truth. internal/jira's unit tests
// check the client's waits to the millisecond with a fake clock; here a
// recording proxy in front of the site sees every attempt of every call
// the real service makes, and checks:
//   - a storm: dozens of 429s;
//   - every retry came no sooner than the Retry-After of the 429 before it
//     (no hammering), and typically not much later either (no needless
//     waiting): the median delay is within half a second of what was asked;
//   - no call was given up: each one's last attempt succeeded, within the
//     client's 5 attempts; one sync run, succeeded, its River job done at
//     the first attempt without error;
//   - fewer 429s than successful answers: a call meets at most one 429 a
//     second, the bucket grants 20 successes a second, and the sync has
//     about 8 calls going at once (partitions and pages read ahead);
//   - the duration is no shorter than the bucket allows for the requests
//     that succeeded (the limit was in force throughout);
//   - accounting: the requests the client counted (retries included) are
//     the ones the site received, apart from validation's.
//
// SQLite only: rate limits are the Jira client's business, above the
// store.
func TestRateLimitStorm(t *testing.T) {
	needBinary(t)
	const (
		issues      = 1500
		rate, burst = 20, 5
		maxAttempts = jira.DefaultMaxAttempts
	)
	r := newRig(t, storetest.URL(t, store.DialectSQLite), nil)
	opt, rec := recordedSite(t)
	r.siteOptions = []jirasim.SiteOption{opt}
	r.link(13, jirasim.DefaultGenSpec(issues), func(s *jirasim.Site) {
		s.SetLatency(2 * time.Millisecond)
		// Pages of 10 issues: many cheap requests, so the sync would go
		// well above the limit (on SQLite, pages of 100 are written
		// slower than 20 a second and would hardly meet it).
		s.SetSearchLimits(10, jirasim.SearchMaxResultsIDsOnly)
		s.SetRateLimit(rate, burst)
	})
	validating := time.Now()
	r.validate()
	validated := time.Now()
	run := r.waitSucceeded(validating, 120*time.Second, false)
	log := rec.exchanges()

	// Attempts per call, in the order they were sent.
	calls := map[string][]exchange{}
	var total, limited, validation, ok int
	for _, ex := range log {
		if ex.sent.Before(validating) {
			continue // installation and linking
		}
		calls[ex.call] = append(calls[ex.call], ex)
		total++
		if ex.sent.Before(validated) {
			validation++ // an upper bound: the sync may have begun
		}
		switch {
		case ex.status == http.StatusTooManyRequests:
			limited++
		case ex.status/100 == 2 && !ex.sent.Before(run.Started):
			ok++
		}
	}
	var gaps []time.Duration
	early, gaveUp, tooMany := 0, 0, 0
	for _, attempts := range calls {
		slices.SortFunc(attempts, func(a, b exchange) int { return a.sent.Compare(b.sent) })
		// A call made twice (the id sweep runs before and after the
		// pages) is two calls: a 2xx ends one.
		n := 0
		for i, ex := range attempts {
			n++
			if i > 0 && attempts[i-1].status == http.StatusTooManyRequests {
				prev := attempts[i-1]
				gap := ex.sent.Sub(prev.answered)
				gaps = append(gaps, gap-prev.retryAfter)
				if gap < prev.retryAfter {
					if early++; early <= 5 {
						t.Errorf("%s retried %v after a 429 that asked for %v", ex.path, gap.Round(time.Millisecond), prev.retryAfter)
					}
				}
			}
			if ex.status/100 == 2 {
				if n > maxAttempts {
					tooMany++
				}
				n = 0
			}
		}
		if n > 0 {
			gaveUp++
			t.Errorf("%s: the last of %d attempts was answered %d", attempts[len(attempts)-1].path, n, attempts[len(attempts)-1].status)
		}
	}
	slices.Sort(gaps)
	var median time.Duration
	if len(gaps) > 0 {
		median = gaps[len(gaps)/2]
	}
	requests := run.Counts["requests"]
	dur := run.Finished.Sub(run.Started)
	t.Logf("sync of %d issues behind %d req/s (burst %d): %v; the site got %d requests in %d calls (validation: %d) and answered %d with 429 (%.0f%%); "+
		"retries came %v to %v after the Retry-After asked (median %v); the client counted %d requests",
		issues, rate, burst, dur.Round(time.Millisecond), total, len(calls), validation, limited, 100*float64(limited)/float64(total),
		first(gaps).Round(time.Millisecond), last(gaps).Round(time.Millisecond), median.Round(time.Millisecond), requests)

	if limited < 15 {
		t.Errorf("only %d 429s: not a storm, the test proves nothing", limited)
	}
	if early > 0 {
		t.Errorf("%d retries came before the Retry-After of their 429 had passed", early)
	}
	if median > 500*time.Millisecond {
		t.Errorf("retries came a median %v later than Retry-After asked: the client waits more than asked", median)
	}
	if gaveUp > 0 || tooMany > 0 {
		t.Errorf("%d calls given up, %d took more than %d attempts", gaveUp, tooMany, maxAttempts)
	}
	if limited >= total-limited {
		t.Errorf("%d 429s for %d other answers: the client hammers the site", limited, total-limited)
	}
	if atLimit := time.Duration(float64(ok-burst) / rate * float64(time.Second)); dur < atLimit {
		t.Errorf("the sync took %v, less than the bucket allows for its %d successful requests (%v)", dur, ok, atLimit)
	}
	if requests > total || total-requests > validation {
		t.Errorf("the client counted %d requests, the site received %d (validation: %d)", requests, total, validation)
	}
	r.svc.stop()

	db := openDB(t, r.svc.env["DATABASE_URL"])
	defer db.Close()
	compareWithTruth(t, db, r.itID, r.site.GroundTruth())
	if runs := syncRuns(t, db, r.itID); len(runs) != 1 || runs[0].State != "succeeded" {
		t.Errorf("sync runs: %+v, want one, succeeded", runs)
	}
	if jobs := syncJobs(t, db); len(jobs) != 1 || jobs[0].State != "completed" || jobs[0].Attempt != 1 || !emptyErrors(jobs[0].Errors) {
		t.Errorf("River's sync jobs: %+v, want one, completed at the first attempt without error", jobs)
	}
}

// emptyErrors reports River's errors column holding no error (NULL, or
// an empty array in either dialect).
func emptyErrors(s string) bool { return s == "" || s == "[]" || s == "{}" || s == "null" }

func first(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[0]
}

func last(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[len(d)-1]
}
