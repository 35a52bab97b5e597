package jirasim_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sei-io/jira-connect/internal/atlassianjwt"
	"github.com/sei-io/jira-connect/internal/jirasim"
)

type delivery struct {
	path string
	body map[string]any
}

// receiver is an app that records the webhooks it gets, verifying their
// signature with the site's shared secret.
type receiver struct {
	mu   sync.Mutex
	got  []delivery
	site *jirasim.Site
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, err := atlassianjwt.ExtractToken(r)
	rc.mu.Lock()
	s := rc.site
	rc.mu.Unlock()
	v := atlassianjwt.Verifier{Secrets: atlassianjwt.Installation{ClientKey: s.ClientKey, Secret: []byte(s.SharedSecret)}}
	if err != nil {
		http.Error(w, err.Error(), 401)
		return
	}
	if _, err := v.Verify(r.Context(), tok, r.Method, r.URL, false); err != nil {
		http.Error(w, err.Error(), 401)
		return
	}
	var body map[string]any
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	rc.mu.Lock()
	rc.got = append(rc.got, delivery{r.URL.Path, body})
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) take() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := rc.got
	rc.got = nil
	return out
}

func TestMutationsAndWebhooks(t *testing.T) {
	t.Parallel()
	rc := &receiver{}
	app := httptest.NewServer(rc)
	t.Cleanup(app.Close)
	webhooks := map[string]string{}
	for _, e := range []string{"jira:issue_created", "jira:issue_updated", "jira:issue_deleted"} {
		webhooks[e] = "/webhooks/jira/issue"
	}
	for _, e := range []string{"comment_created", "comment_updated", "comment_deleted"} {
		webhooks[e] = "/webhooks/jira/comment"
	}
	s := newSite(t, &jirasim.App{BaseURL: app.URL, Key: "io.sei.test", Webhooks: webhooks})
	spec := jirasim.DefaultGenSpec(40)
	spec.Now = simNow
	if err := s.Generate(2, spec); err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	rc.site = s
	rc.mu.Unlock()
	ctx := context.Background()
	gt := s.GroundTruth()
	target := gt.Issues[10]
	author := gt.Users[0].AccountID
	at := simNow.Add(time.Hour)

	// A transition: a history with the status (and resolution) items, a
	// later updated, and jira:issue_updated with the changelog.
	to := "Done"
	if target.Status == "Done" {
		to = "In Progress"
	}
	ev, err := s.TransitionIssue(target.Key, to, jirasim.By(author), jirasim.At(at))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeliverAll(ctx, ev); err != nil {
		t.Fatal(err)
	}
	got := rc.take()
	if len(got) != 1 || got[0].path != "/webhooks/jira/issue" {
		t.Fatalf("deliveries %+v", got)
	}
	b := got[0].body
	issue := b["issue"].(map[string]any)
	fields := issue["fields"].(map[string]any)
	items := b["changelog"].(map[string]any)["items"].([]any)
	first := items[0].(map[string]any)
	if b["webhookEvent"] != "jira:issue_updated" || b["timestamp"] != float64(at.UnixMilli()) || issue["key"] != target.Key ||
		fields["status"].(map[string]any)["name"] != to || first["field"] != "status" || first["fromString"] != target.Status || first["toString"] != to ||
		b["user"].(map[string]any)["accountId"] != author || fields["comment"] != nil {
		t.Fatalf("issue_updated body %v", b)
	}
	if (to == "Done") != (fields["resolution"] != nil) || len(items) != 2 {
		t.Errorf("resolution %v with %d items", fields["resolution"], len(items))
	}
	after := s.GroundTruth()
	ti := findIssue(t, after, target.ID)
	last := ti.Transitions[len(ti.Transitions)-1]
	if ti.Status != to || !ti.Updated.Equal(at) || last.To != to || last.Author != author || !last.At.Equal(at) || ti.Histories != target.Histories+1 {
		t.Errorf("after transition: %+v", ti)
	}
	var page searchPage
	getJSON(t, s, "/rest/api/3/search/jql", url.Values{"jql": {"updated >= " + strconv.FormatInt(at.UnixMilli(), 10)}, "fields": {"status"}}, &page)
	if len(page.Issues) != 1 || page.Issues[0].Key != target.Key {
		t.Errorf("search by updated finds %v", page.Issues)
	}

	// A field update: generic items; project moves are refused.
	ev, err = s.UpdateIssue(target.Key, func(f map[string]any) {
		f["summary"] = "Renamed"
		f["labels"] = []any{"a", "b"}
		f[jirasim.FieldStoryPoints] = 8
		f["assignee"] = ""
	})
	if err != nil {
		t.Fatal(err)
	}
	var upd struct {
		Changelog struct {
			Items []struct{ Field, FieldID, Fieldtype string }
		}
		IssueEventTypeName string `json:"issue_event_type_name"`
	}
	_ = json.Unmarshal(ev.Body, &upd)
	var names []string
	for _, it := range upd.Changelog.Items {
		names = append(names, it.FieldID+"/"+it.Field+"/"+it.Fieldtype)
	}
	if !strings.Contains(strings.Join(names, " "), "customfield_10016/Story point estimate/custom") || !strings.Contains(strings.Join(names, " "), "summary/summary/jira") ||
		upd.IssueEventTypeName != "issue_updated" {
		t.Errorf("items %v, type %s", names, upd.IssueEventTypeName)
	}
	if _, err := s.UpdateIssue(target.Key, func(f map[string]any) { f["project"] = map[string]any{"key": "X"} }); err == nil {
		t.Error("project move accepted")
	}
	if _, err := s.TransitionIssue(target.Key, "Nowhere"); err == nil {
		t.Error("unknown status accepted")
	}

	// Comments: created, updated, deleted, each with its event.
	cev, err := s.AddComment(target.Key, author, "first line\nsecond line", jirasim.At(at.Add(time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	uev, err := s.UpdateComment(target.Key, cev.CommentID, "edited")
	if err != nil {
		t.Fatal(err)
	}
	ti = findIssue(t, s.GroundTruth(), target.ID)
	c := ti.Comments[len(ti.Comments)-1]
	if c.Body != "edited" || strconv.FormatInt(c.ID, 10) != cev.CommentID || !c.Updated.After(c.Created) || c.Author != author {
		t.Errorf("comment %+v", c)
	}
	dev, err := s.DeleteComment(target.Key, cev.CommentID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteComment(target.Key, cev.CommentID); err == nil {
		t.Error("deleted twice")
	}
	// Out of order and duplicated, as Jira may deliver.
	if err := s.DeliverAll(ctx, dev, cev, uev, cev); err != nil {
		t.Fatal(err)
	}
	var seq []string
	for _, d := range rc.take() {
		if d.path != "/webhooks/jira/comment" || d.body["comment"] == nil || d.body["issue"].(map[string]any)["key"] != target.Key {
			t.Errorf("comment delivery %+v", d)
		}
		seq = append(seq, d.body["webhookEvent"].(string))
	}
	if strings.Join(seq, ",") != "comment_deleted,comment_created,comment_updated,comment_created" {
		t.Errorf("delivered %v", seq)
	}
	if cev.Name != "comment_created" || uev.Name != "comment_updated" || dev.Name != "comment_deleted" {
		t.Errorf("event names %s %s %s", cev.Name, uev.Name, dev.Name)
	}
	if ti := findIssue(t, s.GroundTruth(), target.ID); len(ti.Comments) != len(target.Comments) {
		t.Errorf("%d comments after delete, want %d", len(ti.Comments), len(target.Comments))
	}

	// Create: the next id and key in the project.
	nev, err := s.CreateIssue("PLAT", map[string]any{"summary": "Fresh", "issuetype": "Bug", "assignee": author})
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		Issue struct {
			ID, Key string
			Fields  struct {
				Summary   string
				IssueType struct{ Name string }
				Status    struct{ Name string }
			}
		}
	}
	_ = json.Unmarshal(nev.Body, &created)
	plat := 0
	for _, ti := range gt.Issues {
		if ti.ProjectKey == "PLAT" {
			plat++
		}
	}
	if nev.Name != "jira:issue_created" || created.Issue.ID != strconv.Itoa(jirasim.FirstGeneratedID+40) || created.Issue.Key != "PLAT-"+strconv.Itoa(plat+1) ||
		created.Issue.Fields.IssueType.Name != "Bug" || created.Issue.Fields.Status.Name != "To Do" || nev.IssueKey != created.Issue.Key {
		t.Errorf("created %+v (event %s %s)", created, nev.IssueID, nev.IssueKey)
	}
	call(t, s, http.MethodGet, "/rest/api/3/issue/"+nev.IssueKey, nil, s.SharedSecret, "").want(t, 200, `"summary":"Fresh"`)
	if _, err := s.CreateIssue("NOPE", nil); err == nil {
		t.Error("created in an unknown project")
	}

	// Delete and hide: gone from search and GET; JQL naming them is refused.
	del, err := s.DeleteIssue(nev.IssueKey)
	if err != nil {
		t.Fatal(err)
	}
	hidden := gt.Issues[3]
	if err := s.MoveIssueOutOfView(hidden.Key); err != nil {
		t.Fatal(err)
	}
	if err := s.DeliverAll(ctx, del); err != nil {
		t.Fatal(err)
	}
	if got := rc.take(); len(got) != 1 || got[0].body["webhookEvent"] != "jira:issue_deleted" {
		t.Errorf("deleted delivery %+v", got)
	}
	for _, key := range []string{nev.IssueKey, hidden.Key} {
		call(t, s, http.MethodGet, "/rest/api/3/issue/"+key, nil, s.SharedSecret, "").want(t, 404, jirasim.MsgIssueNotFound)
		call(t, s, http.MethodGet, "/rest/api/3/search/jql", url.Values{"jql": {"key = " + key}}, s.SharedSecret, "").want(t, 400, "does not exist")
	}
	final := s.GroundTruth()
	if len(final.Issues) != 39 || len(final.Deleted) != 1 || len(final.Hidden) != 1 || final.Hidden[0] != hidden.ID {
		t.Errorf("%d issues, deleted %v, hidden %v", len(final.Issues), final.Deleted, final.Hidden)
	}
	if _, err := s.UpdateIssue(nev.IssueKey, nil); !errors.Is(err, jirasim.ErrIssueNotFound) {
		t.Errorf("update of a deleted issue: %v", err)
	}
	// An event for an app that declares no such webhook cannot be sent.
	s.App.Webhooks = map[string]string{}
	if err := s.DeliverAll(ctx, ev); err == nil {
		t.Error("delivered an undeclared event")
	}
}

// Issues added by hand take mutations too.
func TestMutateAddedIssue(t *testing.T) {
	t.Parallel()
	s := newSite(t, nil)
	if err := s.AddIssue(jirasim.Issue("10001", "SEI-1", map[string]any{"summary": "one", "status": map[string]any{"name": "To Do", "id": "10000",
		"statusCategory": map[string]any{"key": "new"}}})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TransitionIssue("SEI-1", "In Progress"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddComment("10001", "557058:someone", "hello"); err != nil {
		t.Fatal(err)
	}
	ev, err := s.CreateIssue("SEI", nil)
	if err != nil || ev.IssueKey != "SEI-2" || ev.IssueID != "10002" {
		t.Fatalf("created %v %v", ev, err)
	}
	ti := findIssue(t, s.GroundTruth(), 10001)
	if ti.Status != "In Progress" || len(ti.Transitions) != 1 || ti.Transitions[0].From != "To Do" || len(ti.Comments) != 1 || ti.Comments[0].Body != "hello" {
		t.Errorf("%+v", ti)
	}
	r := call(t, s, http.MethodGet, "/rest/api/3/search/jql", url.Values{"jql": {"project = SEI ORDER BY key"}, "fields": {"*all"}, "expand": {"changelog"}}, s.SharedSecret, "")
	r.want(t, 200, `"total":1`)
	r.want(t, 200, `"key":"SEI-2"`)
}

func findIssue(t *testing.T, gt *jirasim.GroundTruth, id int64) jirasim.TruthIssue {
	t.Helper()
	for _, ti := range gt.Issues {
		if ti.ID == id {
			return ti
		}
	}
	t.Fatalf("no issue %d", id)
	return jirasim.TruthIssue{}
}
