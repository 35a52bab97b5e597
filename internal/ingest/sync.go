package ingest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/sei-io/jira-connect/internal/apperr"
	"github.com/sei-io/jira-connect/internal/store"
)

// Modes of a sync.
const (
	ModeFull        = "full"
	ModeIncremental = "incremental"
)

// Run states.
const (
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
)

// SourceFactory opens a Source for an integration.
type SourceFactory func(ctx context.Context, it *store.Integration) (Source, error)

// Syncer runs syncs.
type Syncer struct {
	DB      *store.DB
	Sources SourceFactory
	Now     func() time.Time
	Log     *slog.Logger

	// Parallel is how many partitions run at once; the Jira client's own
	// limiter still decides how many requests are in flight.
	Parallel int
	// PartitionSize is how many issues one partition of a full sync holds.
	PartitionSize int
	// Overlap re-reads this much before the incremental watermark, for
	// clock skew between Jira's nodes and issues sharing one instant.
	Overlap time.Duration
	// PageSize is the maxResults asked of a search with fields (Jira
	// grants up to 100); SweepPageSize for id-only searches (up to 5000).
	PageSize, SweepPageSize int
	// ReadAhead is how many pages a sync's partitions together may hold
	// read ahead of the one each is writing (default Parallel/2): each
	// page held is a few MB, and the peak of a sync's memory is the pages
	// it holds. A partition that finds none free reads its next page once
	// it has written the current one.
	ReadAhead int
}

func (s *Syncer) defaults() {
	if s.Parallel <= 0 {
		s.Parallel = 4
	}
	if s.PartitionSize <= 0 {
		s.PartitionSize = 5000
	}
	if s.Overlap <= 0 {
		s.Overlap = 5 * time.Minute
	}
	if s.PageSize <= 0 {
		s.PageSize = 100
	}
	if s.SweepPageSize <= 0 {
		s.SweepPageSize = 5000
	}
	if s.ReadAhead <= 0 {
		s.ReadAhead = max(1, s.Parallel/2)
	}
}

// Checkpoint partitions.
const (
	cpPlan        = "full:plan"
	cpFullPrefix  = "full:"
	cpIncremental = "incremental"
)

// plan is a full sync cut into disjoint id ranges per project. It is saved
// before the first page, so a resumed sync keeps the same partitions and
// their checkpoints stay meaningful.
type plan struct {
	StartedAt  time.Time   `json:"started_at"`
	Partitions []partition `json:"partitions"`
}

type partition struct {
	Project string `json:"project"`
	From    int64  `json:"from"` // inclusive issue ids
	To      int64  `json:"to"`
}

func (p partition) name() string {
	return fmt.Sprintf("%s%s:%d-%d", cpFullPrefix, p.Project, p.From, p.To)
}

// run is one sync's shared state.
type run struct {
	s     *Syncer
	it    *store.Integration
	src   Source
	tr    *Transformer
	rec   store.SyncRun
	users *userSet
	mu    sync.Mutex    // guards rec counters
	ahead chan struct{} // tokens for pages read ahead (Syncer.ReadAhead); nil: no limit
	// findMissingUsers makes writeUsers also look for users the stored
	// data references but jira_users lacks: a sync's job (a resumed one
	// did not see the pages before its checkpoint), not a webhook's (the
	// query reads all the integration's issues and children).
	findMissingUsers bool
	// fullWanted is the full-sync request this run serves (the position
	// of store.CheckpointFullWanted when it started), "" for none.
	fullWanted string
}

// Sync runs a sync of the integration. "full" re-reads everything (resuming
// an interrupted full sync where it stopped); "incremental" reads what
// changed since the last one, and falls back to full when there was none
// or when a full sync was asked for (store.RequestFullSync).
//
// A full sync asked for while this one runs is run right after it, in the
// same call: one sync per integration runs at a time, so the request's own
// enqueue met this one and was dropped, and without this it would wait for
// the next scheduled sync (or, when this sync is incremental, be
// forgotten if this one wrote back the watermark the request dropped).
func (s *Syncer) Sync(ctx context.Context, integrationID, mode string) error {
	for again := 0; ; again++ {
		if err := s.syncOnce(ctx, integrationID, mode); err != nil {
			return err
		}
		if again == maxRunsAgain {
			return nil // the next sync serves what is still asked for
		}
		cps, err := s.DB.Checkpoints(ctx, integrationID)
		if err != nil {
			return err
		}
		if cps[store.CheckpointFullWanted] == "" {
			return nil
		}
	}
}

// maxRunsAgain bounds the full syncs one Sync call runs for requests made
// while it ran.
const maxRunsAgain = 2

func (s *Syncer) syncOnce(ctx context.Context, integrationID, mode string) (err error) {
	s.defaults()
	it, err := s.DB.GetIntegrationByID(ctx, integrationID)
	if err != nil {
		return err
	}
	loc, err := time.LoadLocation(it.Timezone)
	if err != nil {
		loc = time.UTC
	}
	cps, err := s.DB.Checkpoints(ctx, it.ID)
	if err != nil {
		return err
	}
	wanted := cps[store.CheckpointFullWanted]
	if _, ok := cps[cpIncremental]; !ok || cps[cpPlan] != "" || wanted != "" {
		mode = ModeFull // never synced, a full sync to finish, or one asked for
	}
	r := &run{s: s, it: it, users: newUserSet(), ahead: make(chan struct{}, s.ReadAhead), findMissingUsers: true, fullWanted: wanted,
		rec: store.SyncRun{ID: uuid.Must(uuid.NewV7()).String(), IntegrationID: it.ID, Mode: mode, State: StateRunning, StartedAt: s.Now().UTC()}}
	// One sync per integration runs at a time, so any run still marked
	// running died with its process: say so instead of "running" forever.
	if err := s.DB.InterruptRuns(ctx, it.ID, r.rec.StartedAt); err != nil {
		return err
	}
	if err := s.DB.StartRun(ctx, &r.rec); err != nil {
		return err
	}
	defer func() {
		now := s.Now().UTC()
		r.rec.FinishedAt = &now
		r.rec.State = StateSucceeded
		if err != nil {
			r.rec.State = StateFailed
			msg := apperr.As(err).Message
			if e := apperr.As(err); e.Code == apperr.Internal && e.Err != nil {
				msg = e.Err.Error()
			}
			r.rec.Error = &msg
		}
		if r.src != nil {
			r.rec.Requests = r.src.Requests()
		}
		if ferr := s.DB.FinishRun(context.WithoutCancel(ctx), &r.rec); ferr != nil && err == nil {
			err = ferr
		}
		s.Log.InfoContext(ctx, "sync finished", "integration_id", it.ID, "mode", mode, "state", r.rec.State,
			"issues", r.rec.Issues, "requests", r.rec.Requests, "duration", now.Sub(r.rec.StartedAt))
	}()

	if r.src, err = s.Sources(ctx, it); err != nil {
		return err
	}
	meta, err := r.src.Fields(ctx)
	if err != nil {
		return err
	}
	r.tr = &Transformer{IntegrationID: it.ID, Meta: meta, Exclude: NewExclusions(it.ExcludedFields), Location: loc, Now: s.Now}
	projects, err := r.src.Projects(ctx)
	if err != nil {
		return err
	}
	if mode == ModeFull {
		err = r.full(ctx, projects, cps)
	} else {
		err = r.incremental(ctx, projects, cps[cpIncremental])
	}
	if err != nil {
		return err
	}
	return r.writeUsers(ctx)
}

func (r *run) add(f func(rec *store.SyncRun)) {
	r.mu.Lock()
	f(&r.rec)
	r.mu.Unlock()
}

// quote makes a JQL string literal.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// visibleIDs lists the ids of every issue the app can see with id-only
// searches (Jira's largest pages), Parallel projects at once (a site's
// round trip is paid per page: read one project after another, the pages
// of a large site add up to seconds). fn gets each project's ids in
// ascending order, with the project's index in projects, one call at a
// time.
func (r *run) visibleIDs(ctx context.Context, projects []string, fn func(i int, ids []int64)) error {
	var mu sync.Mutex
	return parallel(ctx, r.s.Parallel, indexes(len(projects)), func(ctx context.Context, i int) error {
		var ids []int64
		q := Query{JQL: "project = " + quote(projects[i]) + " ORDER BY id ASC", Fields: []string{"id"}, MaxResults: r.s.SweepPageSize}
		for {
			issues, next, err := r.src.Search(ctx, q)
			if err != nil {
				return err
			}
			for _, raw := range issues {
				var v struct {
					ID string `json:"id"`
				}
				if json.Unmarshal(raw, &v) == nil {
					if id, err := strconv.ParseInt(v.ID, 10, 64); err == nil {
						ids = append(ids, id)
					}
				}
			}
			if next == "" {
				break
			}
			q.PageToken = next
		}
		slices.Sort(ids)
		mu.Lock()
		defer mu.Unlock()
		fn(i, ids)
		return nil
	})
}

func indexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func (r *run) full(ctx context.Context, projects []string, cps map[string]string) error {
	var pl plan
	resume := cps[cpPlan] != ""
	if resume {
		if err := json.Unmarshal([]byte(cps[cpPlan]), &pl); err != nil {
			return apperr.Wrap(err, apperr.Internal, "unreadable sync plan")
		}
		// A full sync asked for after the interrupted one began: the
		// partitions it finished were read before the request, so start
		// over.
		if at, ok := store.FullSyncWantedSince(r.fullWanted); ok && at.After(pl.StartedAt) {
			if err := r.s.DB.DeleteCheckpoints(ctx, r.it.ID, cpFullPrefix); err != nil {
				return err
			}
			pl, cps, resume = plan{}, map[string]string{}, false
		}
	}
	if !resume {
		pl.StartedAt = r.s.Now().UTC()
		byProject := make([][]partition, len(projects)) // in project order, however the listing interleaves
		if err := r.visibleIDs(ctx, projects, func(pi int, ids []int64) {
			for i := 0; i < len(ids); i += r.s.PartitionSize {
				end := min(i+r.s.PartitionSize, len(ids)) - 1
				byProject[pi] = append(byProject[pi], partition{Project: projects[pi], From: ids[i], To: ids[end]})
			}
		}); err != nil {
			return err
		}
		pl.Partitions = slices.Concat(byProject...)
		raw, _ := json.Marshal(pl)
		if err := r.s.DB.SaveCheckpoint(ctx, &store.SyncCheckpoint{IntegrationID: r.it.ID, Partition: cpPlan, Position: string(raw)}); err != nil {
			return err
		}
	}

	if err := parallel(ctx, r.s.Parallel, pl.Partitions, func(ctx context.Context, p partition) error {
		last := p.From - 1
		if pos, ok := cps[p.name()]; ok {
			if v, err := strconv.ParseInt(pos, 10, 64); err == nil {
				last = v
			}
		}
		if last >= p.To {
			return nil // done before an interruption
		}
		jql := fmt.Sprintf("project = %s AND id > %d AND id <= %d ORDER BY id ASC", quote(p.Project), last, p.To)
		return r.pages(ctx, jql, func(batch []*Rows) *store.SyncCheckpoint {
			return &store.SyncCheckpoint{IntegrationID: r.it.ID, Partition: p.name(), Position: strconv.FormatInt(batch[len(batch)-1].Issue.IssueID, 10)}
		})
	}); err != nil {
		return err
	}
	if err := r.sweep(ctx, projects); err != nil {
		return err
	}
	// The next incremental sync starts where this full one started: what
	// changed while it ran is read again, idempotently.
	if err := r.s.DB.SaveCheckpoint(ctx, &store.SyncCheckpoint{IntegrationID: r.it.ID, Partition: cpIncremental,
		Position: strconv.FormatInt(pl.StartedAt.UnixMilli(), 10)}); err != nil {
		return err
	}
	if err := r.s.DB.DeleteCheckpoints(ctx, r.it.ID, cpFullPrefix); err != nil {
		return err
	}
	if r.fullWanted != "" {
		return r.s.DB.ClearFullSyncRequest(ctx, r.it.ID, r.fullWanted)
	}
	return nil
}

// incremental reads issues updated since the watermark (minus the overlap)
// in updated order. JQL bounds are epoch milliseconds: Jira would read a
// date string in the site's or the user's time zone, which is how other
// connectors lose data.
func (r *run) incremental(ctx context.Context, projects []string, watermark string) error {
	w, err := strconv.ParseInt(watermark, 10, 64)
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "unreadable incremental watermark")
	}
	from := w - r.s.Overlap.Milliseconds()
	jql := fmt.Sprintf("updated >= %d ORDER BY updated ASC, id ASC", from)
	if err := r.pages(ctx, jql, func(batch []*Rows) *store.SyncCheckpoint {
		// The highest updated seen so far; a later run starts Overlap
		// before it, so issues sharing this instant are read again.
		hi := w
		for _, row := range batch {
			hi = max(hi, row.Issue.Updated.UnixMilli())
		}
		w = hi
		return &store.SyncCheckpoint{IntegrationID: r.it.ID, Partition: cpIncremental, Position: strconv.FormatInt(hi, 10)}
	}); err != nil {
		return err
	}
	return r.sweep(ctx, projects)
}

// pages pages through a search, completing truncated changelogs and
// comments, and writes each page with the checkpoint that follows it.
//
// The next page is requested as soon as a page arrives, so reading from
// Jira overlaps transforming and writing (a site's round trip is spent
// once per page, not twice), when one of the sync's read-ahead tokens is
// free; otherwise after the page is written. A sync holds at most one
// page per partition plus Syncer.ReadAhead.
func (r *run) pages(ctx context.Context, jql string, checkpoint func([]*Rows) *store.SyncCheckpoint) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // abandons a page read ahead when this one fails
	// The report's custom fields and the Salesforce field are requested
	// too (they are read from the stored other-fields JSON).
	fields, err := WithReportFields(ctx, r.s.DB, r.it, SearchFields(r.tr.Meta, r.tr.Exclude))
	if err != nil {
		return err
	}
	q := Query{JQL: jql, Fields: fields, Changelog: true, MaxResults: r.s.PageSize}
	type page struct {
		issues []*Parsed
		next   string
		err    error
	}
	search := func(ctx context.Context, q Query) ([]*Parsed, string, error) {
		if ps, ok := r.src.(parsedSearcher); ok {
			return ps.SearchParsed(ctx, q)
		}
		raws, next, err := r.src.Search(ctx, q)
		if err != nil {
			return nil, "", err
		}
		issues := make([]*Parsed, len(raws))
		for i, raw := range raws {
			if issues[i], err = Parse(raw); err != nil {
				return nil, "", apperr.Wrap(err, apperr.Internal, "unreadable issue from Jira")
			}
		}
		return issues, next, nil
	}
	fetch := func(q Query) <-chan page {
		ch := make(chan page, 1)
		go func() {
			issues, next, err := search(ctx, q)
			ch <- page{issues, next, err}
		}()
		return ch
	}
	// tryAhead takes a read-ahead token if one is free; done gives it back.
	tryAhead := func() bool {
		if r.ahead == nil {
			return true
		}
		select {
		case r.ahead <- struct{}{}:
			return true
		default:
			return false
		}
	}
	done := func() {
		if r.ahead != nil {
			<-r.ahead
		}
	}
	ahead, token := fetch(q), false
	defer func() {
		if token {
			done() // a page read ahead and abandoned (cancelled above)
		}
	}()
	for {
		p := <-ahead
		if token {
			done() // the page read ahead is now the one being written
			token = false
		}
		if p.err != nil {
			return p.err
		}
		// Only the rows are kept past the transform: the decoded page is
		// as large again, and p would keep it alive through the write.
		issues, next := p.issues, p.next
		p = page{}
		ahead = nil
		if next != "" {
			q.PageToken = next
			if tryAhead() {
				ahead, token = fetch(q), true
			}
		}
		if len(issues) > 0 {
			batch, err := r.batch(ctx, issues)
			if err != nil {
				return err
			}
			issues = nil
			if err := r.write(ctx, batch, checkpoint(batch)); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		if ahead == nil {
			ahead = fetch(q)
		}
	}
}

// completeConcurrency bounds the issues of one page whose changelog or
// comments are being fetched at once; the Jira client's limiter still
// decides how many requests are in flight.
const completeConcurrency = 8

// batch transforms a page of raw issues, in order. Issues that Jira
// embedded in full are transformed at once; the few whose changelog or
// comments must be fetched are completed concurrently, so their round
// trips overlap instead of adding up.
func (r *run) batch(parent context.Context, issues []*Parsed) ([]*Rows, error) {
	out := make([]*Rows, len(issues))
	errs := make([]error, len(issues))
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	var wg sync.WaitGroup
	sem := make(chan struct{}, completeConcurrency)
	for i, p := range issues {
		if !p.ChangelogTruncated() && !p.CommentsIncomplete() {
			var err error
			if out[i], err = r.tr.Rows(p); err != nil {
				cancel(err)
				break
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if out[i], errs[i] = r.complete(ctx, p); errs[i] != nil {
				cancel(errs[i]) // the first failure is the cause; later ones follow from it
			}
		})
	}
	wg.Wait()
	if parent.Err() != nil {
		// Cancelled from outside: the first call it interrupted says so.
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
		return nil, parent.Err()
	}
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// complete fetches what Jira did not embed of an issue and transforms it.
func (r *run) complete(ctx context.Context, p *Parsed) (*Rows, error) {
	id := strconv.FormatInt(p.ID, 10)
	if p.ChangelogTruncated() {
		// /changelog/bulkfetch is not open to Connect apps, so page the
		// issue's own changelog. Jira Cloud embeds the newest histories
		// (while saying startAt 0), so fetch the older ones first and
		// merge by id; if the embedded ones were the oldest after all,
		// the union falls short and the rest is fetched too.
		missing := p.HistoriesTotal - len(p.Histories)
		older, err := r.src.Changelog(ctx, id, 0, missing)
		if err != nil {
			return nil, err
		}
		p.Histories = mergeHistories(p.Histories, older)
		if len(p.Histories) < p.HistoriesTotal {
			rest, err := r.src.Changelog(ctx, id, missing, -1)
			if err != nil {
				return nil, err
			}
			p.Histories = mergeHistories(p.Histories, rest)
		}
	}
	// With comments excluded the comment field is not even requested, so
	// nothing is incomplete and no body is fetched.
	if p.CommentsIncomplete() {
		all, err := r.src.Comments(ctx, id)
		if err != nil {
			return nil, err
		}
		p.Comments = all
	}
	return r.tr.Rows(p)
}

// mergeHistories unites two lists of histories by id, oldest first.
func mergeHistories(a, b []History) []History {
	seen := make(map[string]bool, len(a)+len(b))
	out := make([]History, 0, len(a)+len(b))
	for _, list := range [][]History{b, a} {
		for _, h := range list {
			if !seen[h.ID] {
				seen[h.ID] = true
				out = append(out, h)
			}
		}
	}
	slices.SortStableFunc(out, func(x, y History) int {
		if c := x.Created.Compare(y.Created.Time); c != 0 {
			return c
		}
		xi, _ := strconv.ParseInt(x.ID, 10, 64)
		yi, _ := strconv.ParseInt(y.ID, 10, 64)
		return cmp.Compare(xi, yi)
	})
	return out
}

func (r *run) write(ctx context.Context, batch []*Rows, cp *store.SyncCheckpoint) error {
	var b store.IssueBatch
	for _, rows := range batch {
		b.Issues = append(b.Issues, rows.Issue)
		b.Transitions = append(b.Transitions, rows.Transitions...)
		b.FieldChanges = append(b.FieldChanges, rows.FieldChanges...)
		b.Comments = append(b.Comments, rows.Comments...)
		r.users.add(rows.Users)
	}
	if _, err := r.s.DB.WriteIssues(ctx, r.it.ID, &b, cp); err != nil {
		return err
	}
	r.add(func(rec *store.SyncRun) {
		rec.Pages++
		rec.Issues += len(b.Issues)
		rec.Transitions += len(b.Transitions)
		rec.Comments += len(b.Comments)
	})
	return nil
}

// sweep deletes stored issues the app can no longer see: deleted in Jira,
// moved to a project out of reach, or made private.
func (r *run) sweep(ctx context.Context, projects []string) error {
	var visible []int64
	if err := r.visibleIDs(ctx, projects, func(_ int, ids []int64) { visible = append(visible, ids...) }); err != nil {
		return err
	}
	slices.Sort(visible)
	visible = slices.Compact(visible)
	var gone []int64
	after := int64(-1 << 63)
	for {
		stored, err := r.s.DB.IssueIDsAfter(ctx, r.it.ID, after, 5000)
		if err != nil {
			return err
		}
		for _, id := range stored {
			if _, found := slices.BinarySearch(visible, id); !found {
				gone = append(gone, id)
			}
		}
		if len(stored) < 5000 {
			break
		}
		after = stored[len(stored)-1]
	}
	n, err := r.s.DB.DeleteIssues(ctx, r.it.ID, gone)
	r.add(func(rec *store.SyncRun) { rec.Deleted += n })
	return err
}

// parallel runs fn over the items with at most n at once; the first error
// cancels the rest.
func parallel[T any](ctx context.Context, n int, items []T, fn func(context.Context, T) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan T)
	var wg sync.WaitGroup
	for range min(max(n, 1), max(len(items), 1)) {
		wg.Go(func() {
			for it := range work {
				if err := fn(ctx, it); err != nil {
					cancel(err)
				}
			}
		})
	}
	for _, it := range items {
		select {
		case work <- it:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// writeUsers stores every referenced user with details and email. Jira
// embeds display name, activity and time zone where it references a user;
// accounts only named by id (changelog values) are looked up in bulk.
func (r *run) writeUsers(ctx context.Context) error {
	// Users referenced by stored data but never written: a run that resumed
	// from checkpoints did not see the pages before them. Jira embeds no
	// details for them here, so they are looked up in bulk below.
	for after := ""; r.findMissingUsers; {
		missing, err := r.s.DB.MissingUserIDs(ctx, r.it.ID, after, 10000)
		if err != nil {
			return err
		}
		fresh := map[string]UserRef{}
		for _, id := range missing {
			if !r.users.has(id) {
				fresh[id] = UserRef{AccountID: id}
			}
		}
		r.users.add(fresh)
		if len(missing) < 10000 {
			break
		}
		after = missing[len(missing)-1]
	}
	ids := r.users.ids()
	if len(ids) == 0 {
		return nil
	}
	if missing := r.users.withoutDetails(); len(missing) > 0 {
		found, err := r.src.Users(ctx, missing)
		if err != nil {
			return err
		}
		for _, u := range found {
			r.users.add(map[string]UserRef{u.AccountID: u})
		}
	}
	emails, err := r.src.Emails(ctx, ids)
	if err != nil {
		return err
	}
	rows := make([]store.JiraUser, 0, len(ids))
	for _, id := range ids {
		u := r.users.get(id)
		row := store.JiraUser{IntegrationID: r.it.ID, AccountID: id, DisplayName: u.DisplayName, Active: u.Active == nil || *u.Active}
		if e := emails[id]; e != "" {
			row.Email = &e
		}
		if u.TimeZone != "" {
			tz := u.TimeZone
			row.TimeZone = &tz
		}
		if u.AccountType != "" {
			at := u.AccountType
			row.AccountType = &at
		}
		rows = append(rows, row)
	}
	if err := r.s.DB.UpsertUsers(ctx, rows); err != nil {
		return err
	}
	r.add(func(rec *store.SyncRun) { rec.Users = len(rows) })
	return nil
}

// userSet collects the accounts a sync references.
type userSet struct {
	mu sync.Mutex
	m  map[string]UserRef
}

func newUserSet() *userSet { return &userSet{m: map[string]UserRef{}} }

func (u *userSet) add(refs map[string]UserRef) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id, ref := range refs {
		if old, ok := u.m[id]; !ok || old.DisplayName == "" {
			u.m[id] = ref
		}
	}
}

func (u *userSet) ids() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]string, 0, len(u.m))
	for id := range u.m {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func (u *userSet) withoutDetails() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for id, ref := range u.m {
		if ref.DisplayName == "" {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func (u *userSet) has(id string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.m[id]
	return ok
}

func (u *userSet) get(id string) UserRef {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.m[id]
}
