package jirasim

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// GroundTruth is what an ingester of the site should end up with, read
// from the same data the REST API serves.
type GroundTruth struct {
	// Issues the app can see, by id.
	Issues []TruthIssue
	// Users referenced by those issues (assignee, reporter, creator,
	// changelog and comment authors) that the site knows, by accountId.
	Users []TruthUser
	// Deleted and Hidden (MoveIssueOutOfView) issue ids: an ingester that
	// had them must drop them.
	Deleted, Hidden []int64
}

// TruthIssue is one issue's facts. Times are UTC with millisecond
// precision.
type TruthIssue struct {
	ID                 int64
	Key                string
	ProjectID          string
	ProjectKey         string
	Summary            string
	IssueType          string
	Status             string // name
	StatusCategory     string // key: new, indeterminate, done
	Assignee, Reporter string // accountIds, "" for none
	Created, Updated   time.Time
	Resolved           time.Time // zero when unresolved
	ParentID           int64     // 0 for none
	// Histories is the number of changelog histories (all fields).
	Histories int
	// Transitions are the status changes, oldest first.
	Transitions []TruthTransition
	// Comments, oldest first.
	Comments []TruthComment
}

// TruthTransition is a status change.
type TruthTransition struct {
	HistoryID    int64
	FromID, ToID string
	From, To     string // status names
	Author       string // accountId
	At           time.Time
}

// TruthComment is a comment; Body is ADFText of its body.
type TruthComment struct {
	ID               int64
	Author           string
	Body             string
	Created, Updated time.Time
}

// TruthUser is a user as the ingester should store it. Email is what the
// email API returns, "" when it returns nothing for the account.
// VisibleEmail is what a person sees: a Cloud API token gets the address
// only when the profile does not hide it; on Data Center it is Email. On
// a Data Center site AccountID is the user's key (JIRAUSER10001).
type TruthUser struct {
	AccountID    string
	AccountType  string // atlassian or app
	DisplayName  string
	Email        string
	VisibleEmail string
	Active       bool
	TimeZone     string
	Name         string // the Data Center username; "" on Cloud
}

// GroundTruth walks every issue; for a generated site that means building
// each one, about as costly as serving it once. For a million issues
// prefer EachTruthIssue.
func (s *Site) GroundTruth() *GroundTruth {
	gt := &GroundTruth{}
	refs := map[string]bool{}
	s.eachTruth(func(ti TruthIssue) bool {
		gt.Issues = append(gt.Issues, ti)
		return true
	}, refs)
	st := s.rest.st
	st.mu.RLock()
	defer st.mu.RUnlock()
	for _, slot := range st.byID {
		switch f := st.flags[slot]; {
		case f&flagDeleted != 0:
			gt.Deleted = append(gt.Deleted, st.id[slot])
		case f&flagHidden != 0:
			gt.Hidden = append(gt.Hidden, st.id[slot])
		}
	}
	for acc := range refs {
		if u, ok := st.users[acc]; ok {
			tu := TruthUser{AccountID: u.accountID, AccountType: u.accountType, DisplayName: u.displayName,
				Email: u.email, VisibleEmail: u.email, Active: u.active, TimeZone: u.timeZone, Name: u.name}
			if u.emailHidden && !st.dc {
				tu.VisibleEmail = ""
			}
			gt.Users = append(gt.Users, tu)
		}
	}
	slices.SortFunc(gt.Users, func(a, b TruthUser) int {
		switch {
		case a.AccountID < b.AccountID:
			return -1
		case a.AccountID > b.AccountID:
			return 1
		}
		return 0
	})
	return gt
}

// EachTruthIssue calls fn for each issue the app can see, by id, until fn
// returns false. fn runs under the site's read lock: it must not mutate
// the site.
func (s *Site) EachTruthIssue(fn func(TruthIssue) bool) { s.eachTruth(fn, nil) }

// eachTruth is EachTruthIssue; refs, when not nil, collects the
// accountIds referenced.
func (s *Site) eachTruth(fn func(TruthIssue) bool, refs map[string]bool) {
	c := s.genContext()
	st := s.rest.st
	st.mu.RLock()
	defer st.mu.RUnlock()
	for _, slot := range st.byID {
		if !st.visible(slot) {
			continue
		}
		if !fn(st.truth(c, slot, refs)) {
			return
		}
	}
}

// userRef reads a user object's identity: accountId on Cloud, key on
// Data Center.
type userRef struct {
	AccountID string `json:"accountId"`
}

func (u *userRef) UnmarshalJSON(b []byte) error {
	var v struct {
		AccountID string `json:"accountId"`
		Key       string `json:"key"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	u.AccountID = v.AccountID
	if u.AccountID == "" {
		u.AccountID = v.Key
	}
	return nil
}

func (st *store) truth(c genContext, slot int32, refs map[string]bool) TruthIssue {
	rec := st.recOf(c, slot)
	ref := func(acc string) string {
		if refs != nil && acc != "" {
			refs[acc] = true
		}
		return acc
	}
	var f struct {
		Summary   string `json:"summary"`
		IssueType struct {
			Name string `json:"name"`
		} `json:"issuetype"`
		Project struct {
			ID  string `json:"id"`
			Key string `json:"key"`
		} `json:"project"`
		Status struct {
			Name           string `json:"name"`
			StatusCategory struct {
				Key string `json:"key"`
			} `json:"statusCategory"`
		} `json:"status"`
		Assignee, Reporter, Creator *userRef
		ResolutionDate              string `json:"resolutiondate"`
		Parent                      *struct {
			ID string `json:"id"`
		} `json:"parent"`
	}
	for k, dst := range map[string]any{"summary": &f.Summary, "issuetype": &f.IssueType, "project": &f.Project, "status": &f.Status,
		"assignee": &f.Assignee, "reporter": &f.Reporter, "creator": &f.Creator, "resolutiondate": &f.ResolutionDate, "parent": &f.Parent} {
		if raw, ok := rec.fields[k]; ok {
			_ = json.Unmarshal(raw, dst)
		}
	}
	ti := TruthIssue{ID: st.id[slot], Key: st.keyOf(slot), ProjectID: f.Project.ID, ProjectKey: f.Project.Key,
		Summary: f.Summary, IssueType: f.IssueType.Name, Status: f.Status.Name, StatusCategory: f.Status.StatusCategory.Key,
		Created: time.UnixMilli(st.created[slot]).UTC(), Updated: time.UnixMilli(st.updated[slot]).UTC(), Histories: len(rec.histories)}
	if ti.ProjectKey == "" && st.proj[slot] >= 0 {
		p := st.projects[st.proj[slot]]
		ti.ProjectID, ti.ProjectKey = p.id, p.key
	}
	if f.Assignee != nil {
		ti.Assignee = ref(f.Assignee.AccountID)
	}
	if f.Reporter != nil {
		ti.Reporter = ref(f.Reporter.AccountID)
	}
	if f.Creator != nil {
		ref(f.Creator.AccountID)
	}
	if t, ok := parseJiraTime(f.ResolutionDate); ok {
		ti.Resolved = t.UTC()
	}
	if f.Parent != nil {
		ti.ParentID, _ = strconv.ParseInt(f.Parent.ID, 10, 64)
	}
	for _, h := range rec.histories {
		var hv struct {
			ID      string  `json:"id"`
			Author  userRef `json:"author"`
			Created string  `json:"created"`
			Items   []struct {
				FieldID    string  `json:"fieldId"`
				Field      string  `json:"field"`
				From       *string `json:"from"`
				FromString *string `json:"fromString"`
				To         *string `json:"to"`
				ToString   *string `json:"toString"`
			} `json:"items"`
		}
		if json.Unmarshal(h.raw, &hv) != nil {
			continue
		}
		ref(hv.Author.AccountID)
		at, _ := parseJiraTime(hv.Created)
		for _, it := range hv.Items {
			if it.FieldID != "status" && !(it.FieldID == "" && it.Field == "status") {
				continue
			}
			id, _ := strconv.ParseInt(hv.ID, 10, 64)
			ti.Transitions = append(ti.Transitions, TruthTransition{HistoryID: id, FromID: deref(it.From), ToID: deref(it.To),
				From: deref(it.FromString), To: deref(it.ToString), Author: hv.Author.AccountID, At: at.UTC()})
		}
	}
	for _, cm := range rec.comments {
		var cv struct {
			ID           string          `json:"id"`
			Author       userRef         `json:"author"`
			UpdateAuthor userRef         `json:"updateAuthor"`
			Body         json.RawMessage `json:"body"`
			Created      string          `json:"created"`
			Updated      string          `json:"updated"`
		}
		if json.Unmarshal(cm.raw, &cv) != nil {
			continue
		}
		ref(cv.UpdateAuthor.AccountID)
		id, _ := strconv.ParseInt(cv.ID, 10, 64)
		created, _ := parseJiraTime(cv.Created)
		updated, _ := parseJiraTime(cv.Updated)
		ti.Comments = append(ti.Comments, TruthComment{ID: id, Author: ref(cv.Author.AccountID), Body: ADFText(cv.Body),
			Created: created.UTC(), Updated: updated.UTC()})
	}
	return ti
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
