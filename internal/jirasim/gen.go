package jirasim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

// GenSpec sizes and shapes a generated site.
type GenSpec struct {
	Projects int
	Issues   int
	Users    int
	// EmailShare is the share of people whose email the email API returns
	// (it answers regardless of profile visibility; the others are
	// accounts it has no address for and leaves out).
	EmailShare float64
	// HiddenEmailShare is the share of people with an address whose
	// profile hides it: a person's API token (Cloud) does not see it in
	// user objects, though the Connect email API still returns it.
	HiddenEmailShare float64
	// TransitionsPerIssue is the mean number of status transitions per
	// issue; other field changes add about half as many histories again.
	TransitionsPerIssue int
	// CommentsPerIssue is the mean number of comments.
	CommentsPerIssue int
	// LongTailShare of issues have more than EmbeddedChangelogMax (100)
	// histories and more than EmbeddedCommentMax (20) comments, so what
	// the search embeds is truncated.
	LongTailShare float64
	// CustomFields is the number of extra custom fields
	// (customfield_10100 on), besides sprint and story points.
	CustomFields int
	// DescriptionBytes is about the size of each description's text.
	DescriptionBytes int
	// Now is the site's present: every generated time is before it.
	// Zero means time.Now().
	Now time.Time
	// History is how long before Now the first issue was created; zero
	// means three years.
	History time.Duration
}

// DefaultGenSpec is a plausible site of n issues.
func DefaultGenSpec(n int) GenSpec {
	return GenSpec{
		Projects: max(1, min(20, n/500+1)), Issues: n, Users: max(5, min(2000, n/50)), EmailShare: 0.8, HiddenEmailShare: 0.25,
		TransitionsPerIssue: 4, CommentsPerIssue: 3, LongTailShare: 0.01, CustomFields: 8, DescriptionBytes: 400,
	}
}

// Generated issues get ids from FirstGeneratedID on, one per issue, in
// creation order.
const FirstGeneratedID = 10001

// Per-issue caps of generated data (ids of histories and comments are
// derived from the issue's slot and their index below these).
const (
	maxGenHistories = 999
	maxGenComments  = 999
	sprintLength    = 14 * 24 * time.Hour
	releaseEvery    = 45 * 24 * time.Hour
)

// rng streams: each aspect of an issue draws from its own stream, so a
// cheap aspect (its header, its final status) is computed without the rest.
const (
	streamHeader uint64 = iota + 1
	streamWalk
	streamContent
	streamTimes
	streamSummary
	streamUser
	streamProject
)

type generator struct {
	// JSON of the fixed vocabulary, rendered once for the site's URL.
	statusJSON, priorityJSON, typeJSON []json.RawMessage
	resolutionJSON                     json.RawMessage

	seed      uint64
	spec      GenSpec
	now       int64 // epoch ms
	start     int64
	step      int64
	projCum   []float64
	humans    []string // accountIds of generated people
	customIDs []string
}

func (g *generator) rng(n uint64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(g.seed^(stream*0x9E3779B97F4A7C15), n*0xBF58476D1CE4E5B9+stream))
}

// header is what the store needs of a generated issue without building it.
type header struct {
	created, updated           int64
	nStatus, nOther, nComments int
	itype                      int
	proj                       int
}

func (g *generator) header(slot int) header {
	r := g.rng(uint64(slot), streamHeader)
	var h header
	h.created = g.start + int64(slot)*g.step + r.Int64N(g.step)
	x := r.Float64() * g.projCum[len(g.projCum)-1]
	h.proj, _ = slices.BinarySearch(g.projCum, x)
	h.proj = min(h.proj, len(g.projCum)-1)
	w := r.IntN(100)
	for i, it := range issueTypes {
		if w < it.weight {
			h.itype = i
			break
		}
		w -= it.weight
	}
	t, c := g.spec.TransitionsPerIssue, g.spec.CommentsPerIssue
	if r.Float64() < g.spec.LongTailShare {
		h.nStatus = 60 + r.IntN(100)
		h.nOther = 45 + r.IntN(80)
		h.nComments = 21 + r.IntN(40)
	} else {
		h.nStatus = r.IntN(2*t + 1)
		h.nOther = r.IntN(t + 1)
		h.nComments = r.IntN(2*c + 1)
	}
	if h.nStatus+h.nOther+h.nComments == 0 {
		h.updated = h.created
		return h
	}
	life := int64(r.ExpFloat64() * float64(20*24*time.Hour/time.Millisecond))
	if room := g.now - h.created; life >= room {
		life = room / 2
	}
	h.updated = h.created + max(life, int64(h.nStatus+h.nOther+h.nComments)*1000, 1)
	h.updated = min(h.updated, g.now-1)
	return h
}

// step of the changelog walk: a status transition or another change.
type walkStep struct {
	kind     int // 0 status, 1 assignee, 2 priority, 3 story points, 4 labels
	from, to int // statuses, for kind 0
}

func (g *generator) walk(slot int, h header) ([]walkStep, int) {
	r := g.rng(uint64(slot), streamWalk)
	n := min(h.nStatus+h.nOther, maxGenHistories)
	steps := make([]walkStep, 0, n)
	st, leftStatus, leftOther := stToDo, h.nStatus, h.nOther
	for range n {
		if leftStatus > 0 && (leftOther == 0 || r.IntN(leftStatus+leftOther) < leftStatus) {
			leftStatus--
			outs := workflow[st]
			total := 0
			for _, o := range outs {
				total += o.weight
			}
			w := r.IntN(total)
			next := outs[len(outs)-1].to
			for _, o := range outs {
				if w < o.weight {
					next = o.to
					break
				}
				w -= o.weight
			}
			steps = append(steps, walkStep{kind: 0, from: st, to: next})
			st = next
			continue
		}
		leftOther--
		steps = append(steps, walkStep{kind: 1 + r.IntN(4)})
	}
	return steps, st
}

func (g *generator) summary(slot int) string {
	r := g.rng(uint64(slot), streamSummary)
	n := 4 + r.IntN(6)
	ws := make([]string, n)
	for i := range ws {
		ws[i] = words[r.IntN(len(words))]
	}
	s := strings.Join(ws, " ")
	return string(unicode.ToUpper(rune(s[0]))) + s[1:]
}

// Generate replaces the site's issues, projects and users with a
// deterministic site: the same seed and spec give the same JSON (apart
// from the site's own URL in "self" links). Issue content is rebuilt
// from (seed, issue) on every read, so an issue costs 49 bytes
// (memPerIssue) until a mutation stores it: TestMillionIssues measures
// 49 MB of heap for 1,000,000 issues and 2,000 users.
func (s *Site) Generate(seed int64, spec GenSpec) error {
	if spec.Issues < 0 || spec.Projects < 0 || spec.Users < 0 || spec.TransitionsPerIssue < 0 || spec.CommentsPerIssue < 0 || spec.CustomFields < 0 {
		return errors.New("jirasim: GenSpec sizes must not be negative")
	}
	if spec.Issues > math.MaxInt32/2 {
		return errors.New("jirasim: too many issues")
	}
	spec.Projects = max(spec.Projects, 1)
	spec.Users = max(spec.Users, 1)
	if spec.Now.IsZero() {
		spec.Now = time.Now()
	}
	if spec.History <= 0 {
		spec.History = 3 * 365 * 24 * time.Hour
	}
	g := &generator{seed: uint64(seed), spec: spec, now: spec.Now.UnixMilli()}
	g.start = g.now - spec.History.Milliseconds()
	// Leave an hour before Now so every issue has room to be updated.
	g.step = max(1, (spec.History-time.Hour).Milliseconds()/int64(max(spec.Issues, 1)))
	for p := range spec.Projects {
		w := 1 / math.Pow(float64(p+1), 0.7)
		if p > 0 {
			w += g.projCum[p-1]
		}
		g.projCum = append(g.projCum, w)
	}
	for k := range spec.CustomFields {
		g.customIDs = append(g.customIDs, "customfield_"+strconv.Itoa(CustomFieldBase+k))
	}

	base := s.BaseURL
	for i := range statuses {
		g.statusJSON = append(g.statusJSON, statusRaw(base, i))
	}
	for i := range priorities {
		g.priorityJSON = append(g.priorityJSON, priorityRaw(base, i))
	}
	for _, it := range issueTypes {
		g.typeJSON = append(g.typeJSON, mustJSON(map[string]any{"self": base + "/rest/api/3/issuetype/" + it.id, "id": it.id, "name": it.name,
			"subtask": it.subtask, "hierarchyLevel": it.hierarchy, "iconUrl": base + "/images/icons/issuetypes/" + strings.ToLower(it.name) + ".svg"}))
	}
	g.resolutionJSON = resolutionRaw(base)
	st := newStore()
	st.gen = g
	st.dc = s.isDC()
	for p := range spec.Projects {
		name, key := projectName(p)
		pi := st.addProject(base, "", key, name)
		pr := st.projects[pi]
		r := g.rng(uint64(p), streamProject)
		for c := range 3 + r.IntN(4) {
			cid := strconv.Itoa(10000 + p*10 + c)
			pr.components = append(pr.components, mustJSON(map[string]any{
				"self": base + "/rest/api/3/component/" + cid, "id": cid, "name": componentNames[(p+c)%len(componentNames)],
			}))
		}
		for v, t := 0, g.start+releaseEvery.Milliseconds(); ; v, t = v+1, t+releaseEvery.Milliseconds() {
			pr.versions = append(pr.versions, version{id: strconv.Itoa(10000 + p*1000 + v), name: fmt.Sprintf("%d.%d", 1+v/10, v%10), release: t})
			if t > g.now {
				break
			}
		}
	}
	for i := range spec.Users {
		r := g.rng(uint64(i), streamUser)
		fn, ln := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
		var acc string
		if r.IntN(10) < 7 {
			acc = fmt.Sprintf("%016x%08x", r.Uint64(), r.Uint32())
		} else {
			acc = fmt.Sprintf("712020:%08x-%04x-4%03x-a%03x-%012x", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xfff, r.Uint32()&0xfff, r.Uint64()&0xffffffffffff)
		}
		u := simUser{accountID: acc, displayName: fn + " " + ln, active: r.Float64() < 0.92, timeZone: timeZones[r.IntN(len(timeZones))]}
		if r.Float64() < spec.EmailShare {
			u.email = fmt.Sprintf("%s.%s%d@example.com", emailPart(fn), emailPart(ln), i)
		}
		// Drawn last, so the draws above (and the site) stay as before.
		u.emailHidden = u.email != "" && r.Float64() < spec.HiddenEmailShare
		if st.dc {
			// Data Center keys users as JIRAUSER<n> and names them by login.
			u.accountID, u.name = DCUserKey(i), fmt.Sprintf("%s.%s%d", emailPart(fn), emailPart(ln), i)
		}
		st.addUser(base, u)
		g.humans = append(g.humans, u.accountID)
	}
	auto := simUser{accountID: AppUserAutomation, displayName: "Automation for Jira", active: true, accountType: "app"}
	if st.dc {
		auto.accountID, auto.name, auto.accountType = DCAutomationKey, "automation", "atlassian"
	}
	st.addUser(base, auto)

	n := spec.Issues
	st.id = make([]int64, n)
	st.created = make([]int64, n)
	st.updated = make([]int64, n)
	st.proj = make([]int32, n)
	st.keyNum = make([]int32, n)
	st.flags = make([]uint8, n)
	st.byID = make([]int32, n)
	st.byCreated = make([]int32, n)
	counts := make([]int, spec.Projects)
	for slot := range n {
		h := g.header(slot)
		st.id[slot] = FirstGeneratedID + int64(slot)
		st.created[slot], st.updated[slot], st.proj[slot] = h.created, h.updated, int32(h.proj)
		counts[h.proj]++
		st.keyNum[slot] = int32(counts[h.proj])
		st.byID[slot], st.byCreated[slot] = int32(slot), int32(slot)
	}
	for p := range st.projSlots {
		st.projSlots[p] = make([]int32, 0, counts[p])
	}
	for slot := range n {
		st.projSlots[st.proj[slot]] = append(st.projSlots[st.proj[slot]], int32(slot))
	}
	st.byUpdated = slices.Clone(st.byID)
	slices.SortFunc(st.byUpdated, func(a, b int32) int { return st.cmpBy(st.updated, a, st.updated[b], st.id[b]) })
	st.nGen = n

	s.rest.st.replace(st)
	return nil
}

func projectName(p int) (name, key string) {
	name = projectNames[p%len(projectNames)]
	key = strings.ToUpper(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return -1
	}, name))
	key = key[:min(len(key), 4)]
	if round := p / len(projectNames); round > 0 {
		name += " " + strconv.Itoa(round+1)
		key += strconv.Itoa(round + 1)
	}
	return name, key
}

func emailPart(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return -1
	}, s)
}

// replace swaps in a freshly generated store's contents.
func (st *store) replace(from *store) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.data = from.data
}

// genContext carries what rendering a generated issue needs.
type genContext struct {
	base string
	loc  *time.Location
}

func (c genContext) t(ms int64) string { return time.UnixMilli(ms).In(c.loc).Format(JiraTime) }

// build renders generated slot into a record.
func (st *store) build(c genContext, slot int32) *issueRec {
	g := st.gen
	h := g.header(int(slot))
	steps, final := g.walk(int(slot), h)
	r := g.rng(uint64(slot), streamContent)
	tr := g.rng(uint64(slot), streamTimes)
	id := strconv.FormatInt(st.id[slot], 10)
	p := st.projects[st.proj[slot]]
	pick := func() string { return g.humans[r.IntN(len(g.humans))] }

	// Event times: histories and comments, each sorted, the last of all
	// at updated.
	nh, nc := len(steps), min(h.nComments, maxGenComments)
	span := h.updated - h.created
	draw := func(n int) []int64 {
		ts := make([]int64, n)
		for i := range ts {
			ts[i] = h.created + 1 + tr.Int64N(max(span, 1))
		}
		slices.Sort(ts)
		return ts
	}
	ht, ct := draw(nh), draw(nc)
	switch {
	case nh > 0 && (nc == 0 || ht[nh-1] >= ct[nc-1]):
		ht[nh-1] = h.updated
	case nc > 0:
		ct[nc-1] = h.updated
	}

	itype := h.itype
	parent := int32(-1)
	siblings := st.projSlots[st.proj[slot]]
	myNum := int(st.keyNum[slot])
	findEarlier := func(want func(int) bool) int32 {
		if myNum <= 1 {
			return -1
		}
		for range 10 {
			cand := siblings[r.IntN(myNum-1)]
			if int(cand) < st.nGen && want(g.header(int(cand)).itype) {
				return cand
			}
		}
		return -1
	}
	switch itype {
	case itSubtask:
		if parent = findEarlier(func(t int) bool { return t != itSubtask && t != itEpic }); parent < 0 {
			itype = itTask
		}
	case itStory, itTask, itBug:
		if r.IntN(2) == 0 {
			parent = findEarlier(func(t int) bool { return t == itEpic })
		}
	}

	reporter := pick()
	creator := reporter
	if r.IntN(10) == 0 {
		creator = pick()
	}
	assignee := ""
	if r.IntN(100) < 85 {
		assignee = pick()
	}
	prio := 2
	if x := r.IntN(10); x < 2 {
		prio = r.IntN(len(priorities))
	}
	points := -1
	pointScale := []int{1, 2, 3, 5, 8, 13}
	if itype == itStory && r.IntN(10) < 7 {
		points = pointScale[r.IntN(len(pointScale))]
	}
	var labels []string
	for range r.IntN(3) {
		if l := labelWords[r.IntN(len(labelWords))]; !slices.Contains(labels, l) {
			labels = append(labels, l)
		}
	}

	rec := &issueRec{key: st.keyOf(slot), fields: map[string]json.RawMessage{}, hasChangelog: true, hasComments: true}
	user := func(acc string) json.RawMessage {
		if acc == "" {
			return json.RawMessage("null")
		}
		return st.userRaw(c.base, acc)
	}
	var resolved, catChanged int64 = 0, h.created
	for j, stp := range steps {
		author := pick()
		var items []json.RawMessage
		switch stp.kind {
		case 0:
			if r.IntN(10) == 0 {
				author = AppUserAutomation
				if st.dc {
					author = DCAutomationKey
				}
			}
			from, to := statuses[stp.from], statuses[stp.to]
			items = append(items, changeItem("status", "status", some(from.id), some(from.name), some(to.id), some(to.name)))
			if from.catKey != to.catKey {
				catChanged = ht[j]
			}
			switch {
			case stp.to == stDone:
				resolved = ht[j]
				items = append(items, changeItem("resolution", "resolution", null, null, some("10000"), some("Done")))
			case stp.from == stDone:
				resolved = 0
				items = append(items, changeItem("resolution", "resolution", some("10000"), some("Done"), null, null))
			}
		case 1:
			next := ""
			if r.IntN(10) > 0 {
				next = pick()
			}
			items = append(items, changeItem("assignee", "assignee", orNull(assignee), orNull(st.displayName(assignee)), orNull(next), orNull(st.displayName(next)),
				"tmpFromAccountId", orNull(assignee), "tmpToAccountId", orNull(next)))
			assignee = next
		case 2:
			next := r.IntN(len(priorities))
			items = append(items, changeItem("priority", "priority", some(priorities[prio].id), some(priorities[prio].name), some(priorities[next].id), some(priorities[next].name)))
			prio = next
		case 3:
			next := pointScale[r.IntN(len(pointScale))]
			from := null
			if points >= 0 {
				from = some(strconv.Itoa(points))
			}
			items = append(items, changeItem("Story point estimate", FieldStoryPoints, null, from, null, some(strconv.Itoa(next))))
			points = next
		case 4:
			next := slices.Clone(labels)
			if l := labelWords[r.IntN(len(labelWords))]; !slices.Contains(next, l) {
				next = append(next, l)
			} else {
				next = slices.DeleteFunc(next, func(x string) bool { return x == l })
			}
			items = append(items, changeItem("labels", "labels", null, some(strings.Join(labels, " ")), null, some(strings.Join(next, " "))))
			labels = next
		}
		hid := int64(100000) + int64(slot)*1000 + int64(j)
		rec.histories = append(rec.histories, entry{id: hid, at: ht[j], raw: newObj(1024).str("id", strconv.FormatInt(hid, 10)).
			raw("author", user(author)).str("created", c.t(ht[j])).raw("items", rawArray(items)).done()})
	}

	for j := range nc {
		author := pick()
		updated, updAuthor := ct[j], author
		if r.IntN(10) == 0 && h.updated > ct[j] {
			updated = ct[j] + 1 + r.Int64N(h.updated-ct[j])
		}
		cid := int64(100000) + int64(slot)*1000 + int64(j)
		cidS := strconv.FormatInt(cid, 10)
		rec.comments = append(rec.comments, entry{id: cid, at: ct[j], raw: newObj(2048).
			str("self", c.base+"/rest/api/3/issue/"+id+"/comment/"+cidS).str("id", cidS).
			raw("author", user(author)).raw("body", st.body(r, 40+r.IntN(200))).raw("updateAuthor", user(updAuthor)).
			str("created", c.t(ct[j])).str("updated", c.t(updated)).val("jsdPublic", true).done()})
	}

	f := rec.fields
	set := func(k string, v any) { f[k] = mustJSON(v) }
	set("summary", g.summary(int(slot)))
	if r.IntN(5) == 0 || g.spec.DescriptionBytes <= 0 {
		set("description", nil)
	} else {
		f["description"] = st.body(r, g.spec.DescriptionBytes)
	}
	f["issuetype"] = g.typeJSON[itype]
	f["project"] = p.refJSON
	f["status"] = g.statusJSON[final]
	set("statuscategorychangedate", c.t(catChanged))
	f["priority"] = g.priorityJSON[prio]
	f["assignee"] = user(assignee)
	f["reporter"] = user(reporter)
	f["creator"] = user(creator)
	set("created", c.t(h.created))
	set("updated", c.t(h.updated))
	if final == stDone && resolved > 0 {
		f["resolution"] = g.resolutionJSON
		set("resolutiondate", c.t(resolved))
	} else {
		set("resolution", nil)
		set("resolutiondate", nil)
	}
	if r.IntN(10) < 3 {
		set("duedate", time.UnixMilli(h.created).In(c.loc).AddDate(0, 0, 7+r.IntN(60)).Format(time.DateOnly))
	} else {
		set("duedate", nil)
	}
	var comps []json.RawMessage
	for range r.IntN(3) {
		if cp := p.components[r.IntN(len(p.components))]; !slices.ContainsFunc(comps, func(x json.RawMessage) bool { return string(x) == string(cp) }) {
			comps = append(comps, cp)
		}
	}
	f["components"] = rawArray(comps)
	set("labels", orEmpty(labels))
	var fix []any
	if final == stDone || r.IntN(3) == 0 {
		for _, v := range p.versions {
			if v.release >= h.created {
				fix = append(fix, map[string]any{"self": c.base + "/rest/api/3/version/" + v.id, "id": v.id, "name": v.name,
					"archived": false, "released": v.release < g.now, "releaseDate": time.UnixMilli(v.release).UTC().Format(time.DateOnly)})
				break
			}
		}
	}
	set("fixVersions", orEmpty(fix))
	if parent >= 0 {
		f["parent"] = st.parentRef(c, parent)
	}
	if itype != itEpic && r.IntN(10) < 8 {
		k := (h.created - g.start) / sprintLength.Milliseconds()
		sprints := []any{g.sprint(p, int(st.proj[slot]), k)}
		if final != stDone && r.IntN(5) == 0 {
			sprints = append(sprints, g.sprint(p, int(st.proj[slot]), k+1))
		}
		set(FieldSprint, sprints)
	} else {
		set(FieldSprint, nil)
	}
	if points >= 0 {
		set(FieldStoryPoints, float64(points))
	} else {
		set(FieldStoryPoints, nil)
	}
	for k, fid := range g.customIDs {
		if r.IntN(10) >= 6 {
			set(fid, nil)
			continue
		}
		switch k % len(customKinds) {
		case 0:
			set(fid, strings.Join([]string{words[r.IntN(len(words))], words[r.IntN(len(words))], words[r.IntN(len(words))]}, " "))
		case 1:
			set(fid, float64(r.IntN(400))/4)
		case 2:
			set(fid, st.option(c.base, fid, r.IntN(len(optionValues))))
		case 3:
			set(fid, time.UnixMilli(h.created).In(c.loc).AddDate(0, 0, r.IntN(90)).Format(time.DateOnly))
		case 4:
			set(fid, []string{labelWords[r.IntN(len(labelWords))]})
		case 5:
			f[fid] = user(pick())
		case 6:
			set(fid, c.t(h.created+r.Int64N(max(span, 1))))
		case 7:
			set(fid, []any{st.option(c.base, fid, r.IntN(len(optionValues)))})
		}
	}
	return rec
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (st *store) displayName(acc string) string {
	if acc == "" {
		return ""
	}
	if u, ok := st.users[acc]; ok {
		return u.displayName
	}
	return "Former user"
}

func (st *store) option(base, fid string, i int) map[string]any {
	id := strconv.Itoa(10100 + i)
	return map[string]any{"self": base + "/rest/api/3/customFieldOption/" + id, "value": optionValues[i], "id": id}
}

func (g *generator) sprint(p *project, pi int, k int64) map[string]any {
	start := g.start + k*sprintLength.Milliseconds()
	end := start + sprintLength.Milliseconds()
	s := map[string]any{"id": pi*1000 + int(k) + 1, "name": fmt.Sprintf("%s Sprint %d", p.key, k+1), "boardId": pi + 1, "goal": "",
		// Sprint dates are UTC with a "Z", unlike every other date-time.
		"startDate": time.UnixMilli(start).UTC().Format("2006-01-02T15:04:05.000Z"),
		"endDate":   time.UnixMilli(end).UTC().Format("2006-01-02T15:04:05.000Z")}
	switch {
	case end <= g.now:
		s["state"] = "closed"
		s["completeDate"] = time.UnixMilli(end + 3600_000).UTC().Format("2006-01-02T15:04:05.000Z")
	case start <= g.now:
		s["state"] = "active"
	default:
		s["state"] = "future"
		delete(s, "startDate")
		delete(s, "endDate")
	}
	return s
}

// parentRef is the parent field: the parent's current summary, status and
// type.
func (st *store) parentRef(c genContext, slot int32) json.RawMessage {
	id := strconv.FormatInt(st.id[slot], 10)
	pf := map[string]json.RawMessage{}
	if rec, ok := st.recs[slot]; ok {
		for _, k := range []string{"summary", "status", "priority", "issuetype"} {
			if v, ok := rec.fields[k]; ok {
				pf[k] = v
			}
		}
	} else if int(slot) < st.nGen {
		g := st.gen
		h := g.header(int(slot))
		_, final := g.walk(int(slot), h)
		pf["summary"] = mustJSON(g.summary(int(slot)))
		pf["status"] = g.statusJSON[final]
		pf["issuetype"] = g.typeJSON[h.itype]
	}
	return newObj(1024).str("id", id).str("key", st.keyOf(slot)).str("self", c.base+"/rest/api/3/issue/"+id).raw("fields", rawObject(pf)).done()
}

func statusRaw(base string, i int) json.RawMessage {
	s := statuses[i]
	return mustJSON(map[string]any{
		"self": base + "/rest/api/3/status/" + s.id, "description": "", "iconUrl": base + "/", "name": s.name, "id": s.id,
		"statusCategory": map[string]any{"self": base + "/rest/api/3/statuscategory/" + strconv.Itoa(s.catID),
			"id": s.catID, "key": s.catKey, "colorName": s.color, "name": s.catName},
	})
}

func priorityRaw(base string, i int) json.RawMessage {
	p := priorities[i]
	return mustJSON(map[string]any{"self": base + "/rest/api/3/priority/" + p.id, "iconUrl": base + "/images/icons/priorities/" + strings.ToLower(p.name) + ".svg",
		"name": p.name, "id": p.id})
}

func resolutionRaw(base string) json.RawMessage {
	return mustJSON(map[string]any{"self": base + "/rest/api/3/resolution/10000", "id": "10000",
		"description": "Work has been completed on this issue.", "name": "Done"})
}

// body is a rich-text value of about n bytes of text: an Atlassian
// Document Format document on Cloud, a JSON string on Data Center (whose
// API v2 returns text) with the very text ADFText reads from the document.
func (st *store) body(r *rand.Rand, n int) json.RawMessage {
	if st.dc {
		return appendJSONString(nil, st.docText(r, n))
	}
	return st.adf(r, n)
}

// adf is an Atlassian Document Format document of about n bytes of text,
// with the odd mention and code mark.
func (st *store) adf(r *rand.Rand, n int) json.RawMessage {
	b := make([]byte, 0, n+n/2+64)
	b = append(b, `{"type":"doc","version":1,"content":[`...)
	text := func(s string, code bool) {
		b = append(b, `{"type":"text","text":`...)
		b = appendJSONString(b, s)
		if code {
			b = append(b, `,"marks":[{"type":"code"}]`...)
		}
		b = append(b, '}')
	}
	st.paragraphs(r, n, func(first bool, mention string, ws []string, cut int) {
		if !first {
			b = append(b, ',')
		}
		b = append(b, `{"type":"paragraph","content":[`...)
		if mention != "" {
			b = append(b, `{"type":"mention","attrs":{"id":`...)
			b = appendJSONString(b, mention)
			b = append(b, `,"text":`...)
			b = appendJSONString(b, "@"+st.displayName(mention))
			b = append(b, `,"accessLevel":""}},`...)
			text(" ", false)
			b = append(b, ',')
		}
		if cut >= 0 {
			text(strings.Join(ws[:cut], " ")+" ", false)
			b = append(b, ',')
			text(ws[cut], true)
			b = append(b, ',')
			text(" "+strings.Join(ws[cut+1:], " ")+".", false)
		} else {
			text(strings.Join(ws, " ")+".", false)
		}
		b = append(b, `]}`...)
	})
	return append(b, `]}`...)
}

// docText is the text ADFText reads from the document adf draws: a line
// per paragraph.
func (st *store) docText(r *rand.Rand, n int) string {
	var sb strings.Builder
	st.paragraphs(r, n, func(first bool, mention string, ws []string, _ int) {
		if !first {
			sb.WriteByte('\n')
		}
		if mention != "" {
			sb.WriteString("@" + st.displayName(mention) + " ")
		}
		sb.WriteString(strings.Join(ws, " ") + ".")
	})
	return sb.String()
}

// paragraphs draws the paragraphs of about n bytes of text: each with
// perhaps a mention, its words, and the index of a word in code (-1 for
// none).
func (st *store) paragraphs(r *rand.Rand, n int, emit func(first bool, mention string, ws []string, cut int)) {
	for size, paras := 0, 0; size < n || paras == 0; paras++ {
		mention := ""
		if r.IntN(8) == 0 && len(st.gen.humans) > 0 {
			mention = st.gen.humans[r.IntN(len(st.gen.humans))]
		}
		k := 6 + r.IntN(20)
		ws := make([]string, k)
		for i := range ws {
			ws[i] = words[r.IntN(len(words))]
		}
		cut := -1
		if r.IntN(6) == 0 {
			cut = len(ws) / 2
		}
		emit(paras == 0, mention, ws, cut)
		for _, w := range ws {
			size += len(w) + 1
		}
	}
}

// nstr is a string or JSON null.
type nstr struct {
	s    string
	null bool
}

var null = nstr{null: true}

func some(s string) nstr { return nstr{s: s} }

// orNull is s, or null for "".
func orNull(s string) nstr { return nstr{s: s, null: s == ""} }

// changeItem is one item of a changelog history. extra are pairs of a key
// and an nstr.
func changeItem(field, fieldID string, from, fromString, to, toString nstr, extra ...any) json.RawMessage {
	o := newObj(256)
	put := func(k string, v nstr) {
		if v.null {
			o.raw(k, []byte("null"))
		} else {
			o.str(k, v.s)
		}
	}
	o.str("field", field)
	if strings.HasPrefix(fieldID, "customfield_") {
		o.str("fieldtype", "custom")
	} else {
		o.str("fieldtype", "jira")
	}
	o.str("fieldId", fieldID)
	put("from", from)
	put("fromString", fromString)
	put("to", to)
	put("toString", toString)
	for i := 0; i+1 < len(extra); i += 2 {
		put(extra[i].(string), extra[i+1].(nstr))
	}
	return o.done()
}

// adfPlain is a one-paragraph document of text, as the simulator's
// mutations write comments.
func adfPlain(text string) map[string]any {
	var paras []any
	for _, line := range strings.Split(text, "\n") {
		p := map[string]any{"type": "paragraph", "content": []any{}}
		if line != "" {
			p["content"] = []any{map[string]any{"type": "text", "text": line}}
		}
		paras = append(paras, p)
	}
	return map[string]any{"type": "doc", "version": 1, "content": paras}
}

// ADFText is the plain text of an Atlassian Document Format value, as
// GroundTruth reports comment bodies: text nodes as they are, a mention
// as its text ("@Name"), a hard break as "\n", and block nodes
// (paragraphs, headings, list items, code blocks…) separated by "\n".
// A JSON string (an API v2 body) is returned as it is.
func ADFText(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	var blocks []string
	var cur strings.Builder
	var walk func(n any, top bool)
	walk = func(n any, top bool) {
		m, ok := n.(map[string]any)
		if !ok {
			return
		}
		typ, _ := m["type"].(string)
		switch typ {
		case "text":
			s, _ := m["text"].(string)
			cur.WriteString(s)
			return
		case "mention", "emoji", "status", "date":
			if a, ok := m["attrs"].(map[string]any); ok {
				s, _ := a["text"].(string)
				cur.WriteString(s)
			}
			return
		case "hardBreak":
			cur.WriteString("\n")
			return
		}
		kids, _ := m["content"].([]any)
		inline := len(kids) > 0
		for _, k := range kids {
			if km, ok := k.(map[string]any); ok {
				switch km["type"] {
				case "text", "mention", "emoji", "status", "date", "hardBreak", "inlineCard":
				default:
					inline = false
				}
			}
		}
		if inline || (len(kids) == 0 && typ != "doc" && typ != "") {
			for _, k := range kids {
				walk(k, false)
			}
			blocks = append(blocks, cur.String())
			cur.Reset()
			return
		}
		for _, k := range kids {
			walk(k, false)
		}
	}
	walk(v, true)
	if cur.Len() > 0 {
		blocks = append(blocks, cur.String())
	}
	return strings.Join(blocks, "\n")
}

// Prebuild renders every generated issue into a stored record now, the way
// Jira serves issues from its database: a search then copies stored JSON
// instead of generating it (generation is most of a search's cost, see
// BENCHMARKS.md). It costs the memory of a mutated issue per issue (5–20
// KB) and fixes the generated date-times in the site's present time zone,
// so it is meant for throughput benchmarks of the client, not for sites
// whose time zone changes later. Records built on two cores.
func (s *Site) Prebuild() {
	c := s.genContext()
	st := s.rest.st
	st.mu.Lock()
	defer st.mu.Unlock()
	n := st.nGen
	recs := make([]*issueRec, n)
	var wg sync.WaitGroup
	const workers = 2
	for w := range workers {
		wg.Go(func() {
			for slot := w; slot < n; slot += workers {
				if _, ok := st.recs[int32(slot)]; !ok {
					recs[slot] = st.build(c, int32(slot))
				}
			}
		})
	}
	wg.Wait()
	for slot, rec := range recs {
		if rec != nil {
			st.recs[int32(slot)] = rec
		}
	}
}
