package jirasim

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The store holds a site's issues as columns, one entry per slot. Slots
// [0, nGen) are generated: their content is rebuilt from (seed, slot) on
// every read, so a generated issue costs only its columns and index
// entries (see memPerIssue). Every other slot — an issue added with
// AddIssue or CreateIssue, and a generated issue once mutated — has an
// issueRec holding its content.
//
// Three sorted indexes (by id, created, updated; ties broken by id) let a
// search seek to a page token's position in O(log n) and walk in order.
type store struct {
	mu sync.RWMutex
	data
}

// data is the store's content, swapped whole by Generate.
type data struct {
	gen  *generator // nil unless Generate ran
	nGen int

	id      []int64
	created []int64 // epoch ms
	updated []int64 // epoch ms
	proj    []int32 // index into projects, -1 for none
	keyNum  []int32 // N of KEY-N for slots in projSlots, else 0
	flags   []uint8
	recs    map[int32]*issueRec

	byID, byCreated, byUpdated []int32

	keys      map[string]int32 // keys of slots not in projSlots
	projSlots [][]int32        // per project, slots by key number (N-1)

	projects []*project
	users    map[string]*simUser
	userList []string          // accountIds in order of addition
	byName   map[string]string // Data Center username -> key (users' accountID)

	nextHist, nextComment int64

	// dc renders the content as Jira Data Center does (datacenter.go):
	// users by name and key, with emailAddress; comment and description
	// bodies as text. Fixed when the site is made.
	dc bool
}

// Bytes per generated issue held by the store: six column entries (id,
// created, updated: 8 bytes each; proj, keyNum: 4; flags: 1), three index
// entries and one projSlots entry (4 each). Generate sizes the slices
// exactly. A mutated (materialized) issue adds its JSON, 5–20 KB.
const memPerIssue = 8*3 + 4*2 + 1 + 4*3 + 4

const (
	flagDeleted uint8 = 1 << iota
	flagHidden
)

// issueRec is an issue whose content is stored.
type issueRec struct {
	key    string
	self   json.RawMessage // a "self" given to AddIssue, else nil
	fields map[string]json.RawMessage
	// extra are other top-level members given to AddIssue, returned when
	// the search expands them by name.
	extra map[string]json.RawMessage
	// histories and comments, oldest first; hasChangelog and hasComments
	// say whether the issue shows a changelog / comment field at all (an
	// issue added without them shows neither, as before).
	histories    []entry
	comments     []entry
	hasChangelog bool
	hasComments  bool
}

// entry is one changelog history or comment as Jira renders it.
type entry struct {
	id  int64
	at  int64 // created, epoch ms
	raw json.RawMessage
}

type project struct {
	id, key, name string
	raw           json.RawMessage // as /project/search returns it
	refJSON       json.RawMessage // as an issue's project field
	components    []json.RawMessage
	versions      []version
}

type version struct {
	id, name string
	release  int64 // epoch ms
}

// simUser is a person or app. On a Data Center site accountID holds the
// user's key (JIRAUSER10001) and name the username: the ground truth's
// "accountIds" are then keys.
type simUser struct {
	accountID, displayName, email string
	active                        bool
	timeZone                      string
	accountType                   string
	// emailHidden: the profile shows the email to nobody, so a person's
	// API token does not see it (the Connect email API still does).
	emailHidden bool
	name        string          // Data Center username
	raw         json.RawMessage // as embedded in issues (no emailAddress on Cloud)
}

func newStore() *store {
	return &store{data: data{recs: map[int32]*issueRec{}, keys: map[string]int32{}, users: map[string]*simUser{}, byName: map[string]string{}}}
}

func (st *store) n() int { return len(st.id) }

// visible reports whether the app sees slot.
func (st *store) visible(slot int32) bool { return st.flags[slot]&(flagDeleted|flagHidden) == 0 }

// Index orderings: by (value, id).
func (st *store) cmpBy(col []int64, a int32, v, id int64) int {
	if c := cmp.Compare(col[a], v); c != 0 {
		return c
	}
	return cmp.Compare(st.id[a], id)
}

func (st *store) indexCol(ix *[]int32) []int64 {
	switch ix {
	case &st.byCreated:
		return st.created
	case &st.byUpdated:
		return st.updated
	}
	return st.id
}

// insertIndex puts slot into the index at its sorted place; appends are
// O(1), the common case when issues arrive in id and time order.
func (st *store) insertIndex(ix *[]int32, slot int32) {
	col := st.indexCol(ix)
	v, id := col[slot], st.id[slot]
	s := *ix
	if len(s) == 0 || st.cmpBy(col, s[len(s)-1], v, id) < 0 {
		*ix = append(s, slot)
		return
	}
	pos, _ := slices.BinarySearchFunc(s, slot, func(a, _ int32) int { return st.cmpBy(col, a, v, id) })
	*ix = slices.Insert(s, pos, slot)
}

func (st *store) removeIndex(ix *[]int32, slot int32) {
	col := st.indexCol(ix)
	v, id := col[slot], st.id[slot]
	s := *ix
	pos, found := slices.BinarySearchFunc(s, slot, func(a, _ int32) int { return st.cmpBy(col, a, v, id) })
	if found && s[pos] == slot {
		*ix = slices.Delete(s, pos, pos+1)
	}
}

// setUpdated moves slot in the updated index.
func (st *store) setUpdated(slot int32, ms int64) {
	st.removeIndex(&st.byUpdated, slot)
	st.updated[slot] = ms
	st.insertIndex(&st.byUpdated, slot)
}

// slotByID finds an issue by numeric id.
func (st *store) slotByID(id int64) (int32, bool) {
	pos, found := slices.BinarySearchFunc(st.byID, id, func(a int32, id int64) int { return cmp.Compare(st.id[a], id) })
	if !found {
		return 0, false
	}
	return st.byID[pos], true
}

// slotByKey finds an issue by key (case-insensitive, as JQL).
func (st *store) slotByKey(key string) (int32, bool) {
	key = strings.ToUpper(key)
	if slot, ok := st.keys[key]; ok {
		return slot, true
	}
	pk, num, ok := splitKey(key)
	if !ok {
		return 0, false
	}
	p := st.projectByKey(pk)
	if p < 0 || num < 1 || num > len(st.projSlots[p]) {
		return 0, false
	}
	return st.projSlots[p][num-1], true
}

// slotByIDOrKey resolves a path parameter as Jira does: digits are an id.
func (st *store) slotByIDOrKey(s string) (int32, bool) {
	if id, err := strconv.ParseInt(s, 10, 64); err == nil {
		return st.slotByID(id)
	}
	return st.slotByKey(s)
}

func splitKey(key string) (string, int, bool) {
	i := strings.LastIndexByte(key, '-')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(key[i+1:])
	if err != nil || n < 1 {
		return "", 0, false
	}
	return key[:i], n, true
}

// keyOf is slot's issue key.
func (st *store) keyOf(slot int32) string {
	if rec, ok := st.recs[slot]; ok && rec.key != "" {
		return rec.key
	}
	if p := st.proj[slot]; p >= 0 && st.keyNum[slot] > 0 {
		return st.projects[p].key + "-" + strconv.Itoa(int(st.keyNum[slot]))
	}
	return ""
}

// keySortValue orders keys as Jira does: by project key, then number.
func (st *store) keySortValue(slot int32) string {
	k := st.keyOf(slot)
	if pk, n, ok := splitKey(k); ok {
		return fmt.Sprintf("%s-%012d", pk, n)
	}
	return k
}

func (st *store) projectByKey(key string) int {
	for i, p := range st.projects {
		if strings.EqualFold(p.key, key) {
			return i
		}
	}
	return -1
}

// projectRef resolves what JQL's project clause accepts: key, id or name.
func (st *store) projectRef(v string) int {
	if i := st.projectByKey(v); i >= 0 {
		return i
	}
	for i, p := range st.projects {
		if p.id == v || strings.EqualFold(p.name, v) {
			return i
		}
	}
	return -1
}

// addProject registers a project; ids count from 10000.
func (st *store) addProject(base, id, key, name string) int {
	if id == "" {
		id = strconv.Itoa(10000 + len(st.projects))
	}
	if name == "" {
		name = key
	}
	p := &project{id: id, key: strings.ToUpper(key), name: name}
	p.raw = mustJSON(map[string]any{
		"self": base + "/rest/api/3/project/" + id, "id": id, "key": p.key, "name": name,
		"projectTypeKey": "software", "simplified": false, "style": "classic", "isPrivate": false,
		"avatarUrls": avatarURLs(base, "project/"+id), "properties": map[string]any{},
		"entityId": "", "uuid": "",
	})
	p.refJSON = mustJSON(p.ref(base))
	st.projects = append(st.projects, p)
	st.projSlots = append(st.projSlots, nil)
	return len(st.projects) - 1
}

func (p *project) ref(base string) map[string]any {
	return map[string]any{"self": base + "/rest/api/3/project/" + p.id, "id": p.id, "key": p.key, "name": p.name,
		"projectTypeKey": "software", "simplified": false, "avatarUrls": avatarURLs(base, "project/"+p.id)}
}

func avatarURLs(base, what string) map[string]string {
	u := base + "/rest/api/3/universal_avatar/view/type/" + what + "?size="
	return map[string]string{"48x48": u + "48", "24x24": u + "24", "16x16": u + "16", "32x32": u + "32"}
}

// addUser registers or replaces a user.
func (st *store) addUser(base string, u simUser) *simUser {
	if u.accountType == "" {
		u.accountType = "atlassian"
	}
	if u.timeZone == "" {
		u.timeZone = "Etc/UTC"
	}
	if st.dc {
		if u.name == "" {
			u.name = strings.ToLower(u.accountID)
		}
		u.raw = dcUserJSON(base, &u)
		st.byName[u.name] = u.accountID
	} else {
		u.raw = mustJSON(map[string]any{
			"self": base + "/rest/api/3/user?accountId=" + u.accountID, "accountId": u.accountID,
			"avatarUrls": avatarURLs(base, "user/"+u.accountID), "displayName": u.displayName,
			"active": u.active, "timeZone": u.timeZone, "accountType": u.accountType,
		})
	}
	if _, ok := st.users[u.accountID]; !ok {
		st.userList = append(st.userList, u.accountID)
	}
	p := &u
	st.users[u.accountID] = p
	return p
}

// userRaw is the user object embedded in issues; an unknown account
// renders as Jira renders a user it cannot resolve.
func (st *store) userRaw(base, accountID string) json.RawMessage {
	if u, ok := st.users[accountID]; ok {
		return u.raw
	}
	if st.dc {
		return mustJSON(map[string]any{"self": base + "/rest/api/2/user?key=" + accountID, "key": accountID, "name": accountID,
			"displayName": accountID, "active": false})
	}
	return mustJSON(map[string]any{"self": base + "/rest/api/3/user?accountId=" + accountID, "accountId": accountID,
		"displayName": "Former user", "active": false, "accountType": "atlassian"})
}

// newSlot appends a slot with its columns and index entries.
func (st *store) newSlot(id, created, updated int64, proj int32) (int32, error) {
	if _, dup := st.slotByID(id); dup {
		return 0, fmt.Errorf("jirasim: an issue with id %d exists", id)
	}
	slot := int32(len(st.id))
	st.id = append(st.id, id)
	st.created = append(st.created, created)
	st.updated = append(st.updated, updated)
	st.proj = append(st.proj, proj)
	st.keyNum = append(st.keyNum, 0)
	st.flags = append(st.flags, 0)
	st.insertIndex(&st.byID, slot)
	st.insertIndex(&st.byCreated, slot)
	st.insertIndex(&st.byUpdated, slot)
	return slot, nil
}

// nextIssueID is one past the highest id, as Jira hands out ids.
func (st *store) nextIssueID() int64 {
	if len(st.byID) == 0 {
		return 10000
	}
	return st.id[st.byID[len(st.byID)-1]] + 1
}

// addRecord stores an AddIssue issue.
func (st *store) addRecord(base string, raw json.RawMessage, now time.Time) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(compactJSON(raw), &top); err != nil || top == nil {
		return errors.New("jirasim: an issue must be a JSON object")
	}
	var idv any
	if err := json.Unmarshal(top["id"], &idv); err != nil {
		return errors.New(`jirasim: an issue needs an "id"`)
	}
	var id int64
	switch v := idv.(type) {
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf(`jirasim: an issue's "id" must be numeric, as Jira's are (got %q)`, v)
		}
		id = n
	case float64:
		id = int64(v)
	default:
		return errors.New(`jirasim: an issue needs an "id"`)
	}
	rec := &issueRec{fields: map[string]json.RawMessage{}, extra: map[string]json.RawMessage{}}
	if f, ok := top["fields"]; ok {
		if err := json.Unmarshal(f, &rec.fields); err != nil || rec.fields == nil {
			return errors.New(`jirasim: an issue's "fields" must be an object`)
		}
	}
	_ = json.Unmarshal(top["key"], &rec.key)
	rec.key = strings.ToUpper(rec.key)
	if rec.key != "" {
		if _, dup := st.slotByKey(rec.key); dup {
			return fmt.Errorf("jirasim: an issue with key %s exists", rec.key)
		}
	}
	if s, ok := top["self"]; ok {
		rec.self = s
	}
	for k, v := range top {
		switch k {
		case "id", "key", "self", "fields":
		case "changelog":
			var cl struct {
				Histories []json.RawMessage `json:"histories"`
			}
			if json.Unmarshal(v, &cl) == nil {
				rec.hasChangelog = true
				for _, h := range cl.Histories {
					e := parseEntry(h)
					st.nextHist = max(st.nextHist, e.id)
					rec.histories = append(rec.histories, e)
				}
				continue
			}
			rec.extra[k] = v
		default:
			rec.extra[k] = v
		}
	}
	if c, ok := rec.fields["comment"]; ok {
		var cf struct {
			Comments []json.RawMessage `json:"comments"`
		}
		if json.Unmarshal(c, &cf) == nil {
			rec.hasComments = true
			for _, c := range cf.Comments {
				e := parseEntry(c)
				st.nextComment = max(st.nextComment, e.id)
				rec.comments = append(rec.comments, e)
			}
			delete(rec.fields, "comment")
		}
	}
	created := fieldTime(rec.fields["created"], now)
	updated := fieldTime(rec.fields["updated"], now)

	proj := int32(-1)
	var pf struct{ ID, Key, Name string }
	if json.Unmarshal(rec.fields["project"], &pf) == nil && pf.Key != "" {
		if p := st.projectByKey(pf.Key); p >= 0 {
			proj = int32(p)
		} else {
			proj = int32(st.addProject(base, pf.ID, pf.Key, pf.Name))
		}
	} else if pk, _, ok := splitKey(rec.key); ok {
		if p := st.projectByKey(pk); p >= 0 {
			proj = int32(p)
		} else {
			proj = int32(st.addProject(base, "", pk, ""))
		}
	}
	slot, err := st.newSlot(id, created, updated, proj)
	if err != nil {
		return err
	}
	st.recs[slot] = rec
	if rec.key != "" {
		st.keys[rec.key] = slot
	}
	return nil
}

func parseEntry(raw json.RawMessage) entry {
	var v struct {
		ID      any    `json:"id"`
		Created string `json:"created"`
	}
	_ = json.Unmarshal(raw, &v)
	e := entry{raw: raw}
	switch id := v.ID.(type) {
	case string:
		e.id, _ = strconv.ParseInt(id, 10, 64)
	case float64:
		e.id = int64(id)
	}
	if t, ok := parseJiraTime(v.Created); ok {
		e.at = t.UnixMilli()
	}
	return e
}

// fieldTime reads a date-time field, or now when absent.
func fieldTime(raw json.RawMessage, now time.Time) int64 {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if t, ok := parseJiraTime(s); ok {
			return t.UnixMilli()
		}
	}
	return now.UnixMilli()
}

// JiraTime is how Jira writes date-times in REST responses: milliseconds
// and a numeric zone offset without a colon, in the caller's time zone.
const JiraTime = "2006-01-02T15:04:05.000-0700"

func parseJiraTime(s string) (time.Time, bool) {
	for _, layout := range []string{JiraTime, time.RFC3339Nano, "2006-01-02T15:04:05.000Z"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("jirasim: %v", err))
	}
	return b
}
