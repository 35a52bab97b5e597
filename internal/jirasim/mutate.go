package jirasim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Event is one webhook delivery Jira makes for a change. A mutation
// returns it without sending it: Deliver sends it (once, twice, late, in
// any order), as Jira's at-least-once, unordered delivery does.
type Event struct {
	// Name is the webhookEvent: jira:issue_created, jira:issue_updated,
	// jira:issue_deleted, comment_created, comment_updated, comment_deleted.
	Name      string
	IssueID   string
	IssueKey  string
	CommentID string // for comment events
	Timestamp time.Time
	// Body is the payload Jira posts: webhookEvent, timestamp, issue
	// (all navigable fields; a summary of them for comment events), user
	// and issue_event_type_name for issue events, changelog {id, items}
	// for an update that changed fields, comment for comment events.
	Body json.RawMessage
}

// Deliver posts ev to the app, signed, at the URL its descriptor gives
// for ev.Name.
func (s *Site) Deliver(ctx context.Context, ev *Event) (*http.Response, error) {
	return s.Webhook(ctx, ev.Name, ev.Body)
}

// DeliverAll posts the events in the order given and wants a 2xx for each.
func (s *Site) DeliverAll(ctx context.Context, evs ...*Event) error {
	for _, ev := range evs {
		resp, err := s.Deliver(ctx, ev)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("jirasim: %s for %s: HTTP %d", ev.Name, ev.IssueKey, resp.StatusCode)
		}
	}
	return nil
}

// MutationOption says who makes a change and when.
type MutationOption func(*mutation)

type mutation struct {
	author string
	at     time.Time
}

// By makes accountID the author (default: the site's first user).
func By(accountID string) MutationOption { return func(m *mutation) { m.author = accountID } }

// At dates the change (default: the site's clock). The issue's updated
// never goes backwards: it becomes at least its old value plus 1 ms.
func At(t time.Time) MutationOption { return func(m *mutation) { m.at = t } }

// ErrIssueNotFound is returned for an id or key the site does not have
// (or has deleted).
var ErrIssueNotFound = errors.New("jirasim: no such issue")

type mctx struct {
	st     *store
	c      genContext
	slot   int32
	rec    *issueRec
	author string
	at     int64 // epoch ms
}

func (s *Site) mutation(opts []MutationOption) mutation {
	m := mutation{}
	for _, o := range opts {
		o(&m)
	}
	if m.at.IsZero() {
		m.at = s.now()
	}
	return m
}

// mutate runs fn on a materialized issue under the store's write lock.
func (s *Site) mutate(idOrKey string, opts []MutationOption, fn func(*mctx) (*Event, error)) (*Event, error) {
	m := s.mutation(opts)
	c := s.genContext()
	st := s.rest.st
	st.mu.Lock()
	defer st.mu.Unlock()
	slot, ok := st.slotByIDOrKey(idOrKey)
	if !ok || st.flags[slot]&flagDeleted != 0 {
		return nil, fmt.Errorf("%w: %s", ErrIssueNotFound, idOrKey)
	}
	mc := &mctx{st: st, c: c, slot: slot, rec: st.materialize(c, slot), author: m.author,
		at: max(m.at.UnixMilli(), st.updated[slot]+1)}
	if mc.author == "" {
		mc.author = st.defaultAuthor(c.base)
	}
	return fn(mc)
}

func (st *store) defaultAuthor(base string) string {
	for _, acc := range st.userList {
		if st.users[acc].accountType == "atlassian" {
			return acc
		}
	}
	return st.addUser(base, simUser{accountID: "5b10a2844c20165700ede21g", displayName: "Jira Admin", active: true}).accountID
}

func (st *store) newHistID() int64 {
	st.nextHist = max(st.nextHist, 100000+int64(st.nGen)*1000)
	st.nextHist++
	return st.nextHist
}

func (st *store) newCommentID() int64 {
	st.nextComment = max(st.nextComment, 100000+int64(st.nGen)*1000)
	st.nextComment++
	return st.nextComment
}

// touch sets the issue's updated.
func (mc *mctx) touch() {
	mc.rec.fields["updated"] = mustJSON(mc.c.t(mc.at))
	mc.st.setUpdated(mc.slot, mc.at)
}

func (mc *mctx) issueJSON() json.RawMessage {
	return mc.st.renderIssue(mc.c, mc.slot, fieldSel{navigable: true}, nil, renderLimits{})
}

func (mc *mctx) event(name string, body map[string]any) *Event {
	body["webhookEvent"] = name
	body["timestamp"] = mc.at
	return &Event{Name: name, IssueID: strconv.FormatInt(mc.st.id[mc.slot], 10), IssueKey: mc.st.keyOf(mc.slot),
		Timestamp: time.UnixMilli(mc.at), Body: mustJSON(body)}
}

// normalize turns the shorthands a test may write into Jira's values:
// status, priority and issuetype by name or id, users by accountId.
func (st *store) normalize(c genContext, f map[string]any) error {
	if v, ok := f["status"].(string); ok {
		i, found := statusByName(v)
		if !found {
			return fmt.Errorf("jirasim: no status %q (the workflow has To Do, In Progress, In Review, Done)", v)
		}
		f["status"] = statusRaw(c.base, i)
	}
	if v, ok := f["priority"].(string); ok {
		i, found := priorityByName(v)
		if !found {
			return fmt.Errorf("jirasim: no priority %q", v)
		}
		f["priority"] = priorityRaw(c.base, i)
	}
	if v, ok := f["issuetype"].(string); ok {
		for _, it := range issueTypes {
			if it.name == v || it.id == v {
				f["issuetype"] = map[string]any{"self": c.base + "/rest/api/3/issuetype/" + it.id, "id": it.id, "name": it.name,
					"subtask": it.subtask, "hierarchyLevel": it.hierarchy}
			}
		}
	}
	for _, k := range []string{"assignee", "reporter", "creator"} {
		if v, ok := f[k].(string); ok {
			if v == "" {
				f[k] = nil
			} else {
				f[k] = st.userRaw(c.base, v)
			}
		}
	}
	if v, ok := f["description"].(string); ok {
		f["description"] = st.textBody(v)
	}
	return nil
}

func (st *store) fieldName(k string) string {
	for _, d := range systemFields {
		if d.id == k && d.custom {
			return d.name
		}
	}
	if st.gen != nil {
		if i := slices.Index(st.gen.customIDs, k); i >= 0 {
			return customKinds[i%len(customKinds)].name
		}
	}
	return k
}

// display is a value's fromString/toString: a name, a value, a display
// name, the string itself; arrays joined by spaces (labels) or ", ".
func display(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case map[string]any:
		for _, k := range []string{"displayName", "name", "value", "key"} {
			if s, ok := x[k].(string); ok {
				return s
			}
		}
		if x["type"] == "doc" {
			return ADFText(mustJSON(x))
		}
	case []any:
		parts := make([]string, 0, len(x))
		allStrings := true
		for _, e := range x {
			_, isStr := e.(string)
			allStrings = allStrings && isStr
			if d, ok := display(e).(string); ok {
				parts = append(parts, d)
			}
		}
		if allStrings {
			return strings.Join(parts, " ")
		}
		return strings.Join(parts, ", ")
	}
	return string(mustJSON(v))
}

// ident is a value's from/to: an accountId (a Data Center user's key) or
// an id.
func ident(v any) any {
	if x, ok := v.(map[string]any); ok {
		for _, k := range []string{"accountId", "id", "key"} {
			switch id := x[k].(type) {
			case string:
				return id
			case float64:
				return strconv.FormatFloat(id, 'f', -1, 64)
			}
		}
	}
	return nil
}

// UpdateIssue changes an issue's fields: update gets them decoded from
// JSON and changes them in place. Shorthands: "status", "priority" and
// "issuetype" may be set to a name, "assignee"/"reporter" to an accountId
// ("" to unassign), "description" to plain text. Every changed field
// becomes an item of a new changelog history (a status change as Jira
// writes it, with the resolution set on entering Done and cleared on
// leaving it); updated moves on. The event is jira:issue_updated.
func (s *Site) UpdateIssue(idOrKey string, update func(fields map[string]any), opts ...MutationOption) (*Event, error) {
	return s.mutate(idOrKey, opts, func(mc *mctx) (*Event, error) {
		st, rec := mc.st, mc.rec
		f := make(map[string]any, len(rec.fields))
		for k, v := range rec.fields {
			var x any
			_ = json.Unmarshal(v, &x)
			f[k] = x
		}
		old := make(map[string]any, len(f))
		for k, v := range f {
			old[k] = v
		}
		if update != nil {
			update(f)
		}
		if err := st.normalize(mc.c, f); err != nil {
			return nil, err
		}
		if !reflect.DeepEqual(jsonRound(f["project"]), jsonRound(old["project"])) {
			return nil, errors.New("jirasim: UpdateIssue cannot move an issue to another project (MoveIssueOutOfView hides one)")
		}
		for k, v := range f {
			f[k] = jsonRound(v)
		}
		var items []map[string]any
		keys := make([]string, 0, len(f)+len(old))
		for k := range f {
			keys = append(keys, k)
		}
		for k := range old {
			if _, ok := f[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		stamp := mustJSON(mc.c.t(mc.at))
		stamped := map[string]json.RawMessage{}
		for _, k := range keys {
			switch k {
			case "updated", "created", "statuscategorychangedate", "resolutiondate", "comment":
				continue
			}
			ov, nv := old[k], f[k]
			if reflect.DeepEqual(ov, nv) {
				continue
			}
			if k == "status" {
				from, to := statusCategory(ov), statusCategory(nv)
				items = append(items, map[string]any{"field": "status", "fieldtype": "jira", "fieldId": "status",
					"from": ident(ov), "fromString": display(ov), "to": ident(nv), "toString": display(nv)})
				if from != to {
					stamped["statuscategorychangedate"] = stamp
				}
				switch {
				case to == "done" && from != "done" && f["resolution"] == nil:
					f["resolution"] = jsonRound(json.RawMessage(resolutionRaw(mc.c.base)))
					stamped["resolutiondate"] = stamp
					items = append(items, map[string]any{"field": "resolution", "fieldtype": "jira", "fieldId": "resolution",
						"from": nil, "fromString": nil, "to": "10000", "toString": "Done"})
				case from == "done" && to != "done" && f["resolution"] != nil:
					f["resolution"] = nil
					stamped["resolutiondate"] = json.RawMessage("null")
					items = append(items, map[string]any{"field": "resolution", "fieldtype": "jira", "fieldId": "resolution",
						"from": ident(old["resolution"]), "fromString": display(old["resolution"]), "to": nil, "toString": nil})
				}
				continue
			}
			item := map[string]any{"field": st.fieldName(k), "fieldtype": "jira", "fieldId": k,
				"from": ident(ov), "fromString": display(ov), "to": ident(nv), "toString": display(nv)}
			if strings.HasPrefix(k, "customfield_") {
				item["fieldtype"] = "custom"
			}
			if k == "assignee" {
				item["tmpFromAccountId"], item["tmpToAccountId"] = ident(ov), ident(nv)
			}
			items = append(items, item)
		}
		nf := make(map[string]json.RawMessage, len(f))
		for k, v := range f {
			nf[k] = mustJSON(v)
		}
		for k, v := range stamped {
			nf[k] = v
		}
		rec.fields = nf
		mc.touch()
		body := map[string]any{"issue_event_type_name": "issue_generic", "user": st.userRaw(mc.c.base, mc.author)}
		if len(items) > 0 {
			hid := st.newHistID()
			rec.hasChangelog = true
			rec.histories = append(rec.histories, entry{id: hid, at: mc.at, raw: mustJSON(map[string]any{
				"id": strconv.FormatInt(hid, 10), "author": st.userRaw(mc.c.base, mc.author), "created": mc.c.t(mc.at), "items": items,
			})})
			body["changelog"] = map[string]any{"id": strconv.FormatInt(hid, 10), "items": items}
			if len(items) == 1 && items[0]["fieldId"] == "assignee" {
				body["issue_event_type_name"] = "issue_assigned"
			} else if !slices.ContainsFunc(items, func(it map[string]any) bool { return it["fieldId"] == "status" }) {
				body["issue_event_type_name"] = "issue_updated"
			}
		}
		body["issue"] = mc.issueJSON()
		return mc.event("jira:issue_updated", body), nil
	})
}

// TransitionIssue moves an issue to a status (by name or id): UpdateIssue
// with the status set.
func (s *Site) TransitionIssue(idOrKey, status string, opts ...MutationOption) (*Event, error) {
	return s.UpdateIssue(idOrKey, func(f map[string]any) { f["status"] = status }, opts...)
}

func statusCategory(v any) string {
	if m, ok := v.(map[string]any); ok {
		if c, ok := m["statusCategory"].(map[string]any); ok {
			s, _ := c["key"].(string)
			return s
		}
	}
	return ""
}

// jsonRound gives v the shape it has decoded from JSON.
func jsonRound(v any) any {
	var x any
	_ = json.Unmarshal(mustJSON(v), &x)
	return x
}

// commentSummary is the issue as comment webhooks carry it.
func (mc *mctx) commentIssue() json.RawMessage {
	f := map[string]json.RawMessage{}
	for _, k := range []string{"summary", "issuetype", "project", "assignee", "priority", "status"} {
		if v, ok := mc.rec.fields[k]; ok {
			f[k] = v
		}
	}
	id := strconv.FormatInt(mc.st.id[mc.slot], 10)
	return mustJSON(map[string]any{"id": id, "self": mc.c.base + "/rest/api/3/issue/" + id, "key": mc.st.keyOf(mc.slot), "fields": f})
}

// AddComment adds a comment (text becomes a one-paragraph-per-line ADF
// body) by author ("" for the default author) and moves the issue's
// updated. The event is comment_created; ev.CommentID is the new id.
func (s *Site) AddComment(idOrKey, author, text string, opts ...MutationOption) (*Event, error) {
	if author != "" {
		opts = append(opts, By(author))
	}
	return s.mutate(idOrKey, opts, func(mc *mctx) (*Event, error) {
		st := mc.st
		cid := st.newCommentID()
		cidS := strconv.FormatInt(cid, 10)
		id := strconv.FormatInt(st.id[mc.slot], 10)
		u := st.userRaw(mc.c.base, mc.author)
		raw := mustJSON(map[string]any{
			"self": mc.c.base + "/rest/api/3/issue/" + id + "/comment/" + cidS, "id": cidS,
			"author": u, "body": st.textBody(text), "updateAuthor": u,
			"created": mc.c.t(mc.at), "updated": mc.c.t(mc.at), "jsdPublic": true,
		})
		mc.rec.hasComments = true
		mc.rec.comments = append(mc.rec.comments, entry{id: cid, at: mc.at, raw: raw})
		sortedEntries(mc.rec.comments)
		mc.touch()
		ev := mc.event("comment_created", map[string]any{"comment": raw, "issue": mc.commentIssue()})
		ev.CommentID = cidS
		return ev, nil
	})
}

func (mc *mctx) commentIndex(commentID string) (int, error) {
	id, _ := strconv.ParseInt(commentID, 10, 64)
	i := slices.IndexFunc(mc.rec.comments, func(e entry) bool { return e.id == id })
	if i < 0 {
		return 0, fmt.Errorf("jirasim: issue %s has no comment %s", mc.st.keyOf(mc.slot), commentID)
	}
	return i, nil
}

// UpdateComment replaces a comment's text; its updated and updateAuthor
// change, and so does the issue's updated. The event is comment_updated.
func (s *Site) UpdateComment(idOrKey, commentID, text string, opts ...MutationOption) (*Event, error) {
	return s.mutate(idOrKey, opts, func(mc *mctx) (*Event, error) {
		i, err := mc.commentIndex(commentID)
		if err != nil {
			return nil, err
		}
		var c map[string]json.RawMessage
		_ = json.Unmarshal(mc.rec.comments[i].raw, &c)
		c["body"] = mustJSON(mc.st.textBody(text))
		c["updated"] = mustJSON(mc.c.t(mc.at))
		c["updateAuthor"] = mc.st.userRaw(mc.c.base, mc.author)
		mc.rec.comments[i].raw = mustJSON(c)
		mc.touch()
		ev := mc.event("comment_updated", map[string]any{"comment": mc.rec.comments[i].raw, "issue": mc.commentIssue()})
		ev.CommentID = commentID
		return ev, nil
	})
}

// DeleteComment removes a comment. The event is comment_deleted.
func (s *Site) DeleteComment(idOrKey, commentID string, opts ...MutationOption) (*Event, error) {
	return s.mutate(idOrKey, opts, func(mc *mctx) (*Event, error) {
		i, err := mc.commentIndex(commentID)
		if err != nil {
			return nil, err
		}
		raw := mc.rec.comments[i].raw
		mc.rec.comments = slices.Delete(mc.rec.comments, i, i+1)
		mc.touch()
		ev := mc.event("comment_deleted", map[string]any{"comment": raw, "issue": mc.commentIssue()})
		ev.CommentID = commentID
		return ev, nil
	})
}

// DeleteIssue deletes an issue: the search no longer finds it, GET
// answers 404, and JQL naming it by id or key is refused. The event is
// jira:issue_deleted with the issue as it was.
func (s *Site) DeleteIssue(idOrKey string, opts ...MutationOption) (*Event, error) {
	return s.mutate(idOrKey, opts, func(mc *mctx) (*Event, error) {
		body := map[string]any{"issue_event_type_name": "issue_deleted", "user": mc.st.userRaw(mc.c.base, mc.author), "issue": mc.issueJSON()}
		mc.st.flags[mc.slot] |= flagDeleted
		return mc.event("jira:issue_deleted", body), nil
	})
}

// MoveIssueOutOfView takes an issue out of the app's sight, as a move to a
// project the app cannot browse or a new security level does: the search
// no longer finds it and GET answers 404, with no webhook. The issue
// still exists (GroundTruth lists it under Hidden) and mutations still
// change it, but Jira would not send their webhooks to the app: a test
// should not deliver them.
func (s *Site) MoveIssueOutOfView(idOrKey string) error {
	_, err := s.mutate(idOrKey, nil, func(mc *mctx) (*Event, error) {
		mc.st.flags[mc.slot] |= flagHidden
		return nil, nil
	})
	return err
}

// CreateIssue creates an issue in a project (by key) with the next id and
// key. fields are set over defaults (a Task "New issue", To Do, Medium,
// reported by the author), with UpdateIssue's shorthands. The event is
// jira:issue_created; ev.IssueID and ev.IssueKey name the new issue.
func (s *Site) CreateIssue(projectKey string, fields map[string]any, opts ...MutationOption) (*Event, error) {
	m := s.mutation(opts)
	c := s.genContext()
	st := s.rest.st
	st.mu.Lock()
	defer st.mu.Unlock()
	p := st.projectByKey(projectKey)
	if p < 0 {
		return nil, fmt.Errorf("jirasim: no project %s", projectKey)
	}
	author := m.author
	if author == "" {
		author = st.defaultAuthor(c.base)
	}
	at := m.at.UnixMilli()
	proj := st.projects[p]
	f := map[string]any{
		"summary": "New issue", "description": nil, "issuetype": "Task", "project": proj.ref(c.base), "status": "To Do",
		"priority": "Medium", "assignee": "", "reporter": author, "creator": author,
		"created": c.t(at), "updated": c.t(at), "statuscategorychangedate": c.t(at),
		"resolution": nil, "resolutiondate": nil, "duedate": nil, "components": []any{}, "labels": []any{}, "fixVersions": []any{},
		FieldSprint: nil, FieldStoryPoints: nil,
	}
	for k, v := range fields {
		f[k] = v
	}
	if err := st.normalize(c, f); err != nil {
		return nil, err
	}
	slot, err := st.newSlot(st.nextIssueID(), at, at, int32(p))
	if err != nil {
		return nil, err
	}
	rec := &issueRec{fields: map[string]json.RawMessage{}, hasChangelog: true, hasComments: true}
	if top := st.legacyMax(proj.key); top == 0 {
		st.projSlots[p] = append(st.projSlots[p], slot)
		st.keyNum[slot] = int32(len(st.projSlots[p]))
	} else {
		// Issues added with AddIssue hold their own keys: number past them.
		rec.key = proj.key + "-" + strconv.Itoa(max(top, len(st.projSlots[p]))+1)
		st.keys[rec.key] = slot
	}
	for k, v := range f {
		rec.fields[k] = mustJSON(v)
	}
	st.recs[slot] = rec
	mc := &mctx{st: st, c: c, slot: slot, rec: rec, author: author, at: at}
	return mc.event("jira:issue_created", map[string]any{"issue_event_type_name": "issue_created",
		"user": st.userRaw(c.base, author), "issue": mc.issueJSON()}), nil
}

// textBody is text as a comment or description body: a one-paragraph-
// per-line ADF document on Cloud, the text itself on Data Center.
func (st *store) textBody(text string) any {
	if st.dc {
		return text
	}
	return adfPlain(text)
}

// legacyMax is the highest number of the project's keys held outside
// projSlots (issues added with AddIssue).
func (st *store) legacyMax(projectKey string) int {
	top := 0
	for k := range st.keys {
		if pk, n, ok := splitKey(k); ok && pk == projectKey {
			top = max(top, n)
		}
	}
	return top
}
