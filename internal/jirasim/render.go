package jirasim

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// Embedded limits: how much of an issue's changelog and comments a search
// (or GET issue) embeds. Atlassian documents neither for the enhanced
// search; these are the long-observed Jira Cloud caps: expand=changelog
// carries at most 100 histories — the most recent ones, which is why a
// connector that keeps the embedded page loses an issue's oldest history
// (pycontribs/jira#712 and #911, airbytehq/airbyte#33040; JRACLOUD-67458)
// — and the comment field at most 20 comments. Both say how many there
// are in "total", so truncation is visible: total > len(histories) or
// len(comments). Faros reports the enhanced search embedding as few as
// 40 histories (faros-ai/airbyte-connectors#2003); SetEmbeddedLimits
// plays that.
const (
	EmbeddedChangelogMax = 100
	EmbeddedCommentMax   = 20
)

// fieldSel is Jira's fields parameter.
type fieldSel struct {
	all, navigable   bool
	include, exclude map[string]bool
}

// selectFields reads Jira's fields parameter (several may be given, each a
// comma list). The enhanced search's default is id only.
func selectFields(vals []string) fieldSel {
	sel := fieldSel{include: map[string]bool{}, exclude: map[string]bool{}}
	for _, f := range splitList(vals) {
		switch {
		case f == "*all":
			sel.all = true
		case f == "*navigable":
			sel.navigable = true
		case strings.HasPrefix(f, "-"):
			sel.exclude[f[1:]] = true
		default:
			sel.include[f] = true
		}
	}
	return sel
}

func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
	}
	return out
}

// idsOnly reports a request for id and/or key only, the shape Jira serves
// in its largest pages.
func (f fieldSel) idsOnly() bool {
	if f.all || f.navigable {
		return false
	}
	for k := range f.include {
		if k != "id" && k != "key" {
			return false
		}
	}
	return true
}

func (f fieldSel) wants(k string) bool {
	if f.exclude[k] {
		return false
	}
	return f.all || f.include[k] || (f.navigable && navigable(k))
}

// navigable is the /field flag *navigable follows.
func navigable(k string) bool {
	switch k {
	case "comment", "worklog", "attachment", "issuelinks", "timetracking":
		return false
	}
	return true
}

type renderLimits struct{ histories, comments int }

// recOf is slot's content: stored, or built from the generator.
func (st *store) recOf(c genContext, slot int32) *issueRec {
	if rec, ok := st.recs[slot]; ok {
		return rec
	}
	if int(slot) < st.nGen && st.gen != nil {
		return st.build(c, slot)
	}
	return &issueRec{fields: map[string]json.RawMessage{}}
}

// materialize stores a generated issue's content so it can change.
func (st *store) materialize(c genContext, slot int32) *issueRec {
	rec := st.recOf(c, slot)
	st.recs[slot] = rec
	return rec
}

func (st *store) selfOf(c genContext, slot int32, rec *issueRec) json.RawMessage {
	if rec.self != nil {
		return rec.self
	}
	return mustJSON(c.base + "/rest/api/3/issue/" + strconv.FormatInt(st.id[slot], 10))
}

// renderIssue is slot as the search and GET issue return it.
func (st *store) renderIssue(c genContext, slot int32, sel fieldSel, expand []string, lim renderLimits) json.RawMessage {
	return st.appendIssue(nil, c, slot, sel, expand, lim)
}

// appendIssue appends renderIssue's answer to dst: a search page is
// rendered into one buffer, issue after issue, rather than each issue
// into its own and then copied (which, with the page's buffer growing by
// doubling, was a third of the simulator's work).
func (st *store) appendIssue(dst []byte, c genContext, slot int32, sel fieldSel, expand []string, lim renderLimits) []byte {
	id := strconv.FormatInt(st.id[slot], 10)
	if sel.idsOnly() {
		o := objAt(dst)
		o.str("id", id)
		if k := st.keyOf(slot); sel.include["key"] && k != "" {
			o.str("key", k)
		}
		return o.done()
	}
	rec := st.recOf(c, slot)
	o := objAt(dst)
	o.str("id", id).raw("self", st.selfOf(c, slot, rec))
	if k := st.keyOf(slot); k != "" {
		o.str("key", k)
	}
	keys := make([]string, 0, len(rec.fields)+1)
	for k := range rec.fields {
		if sel.wants(k) {
			keys = append(keys, k)
		}
	}
	comments := rec.hasComments && sel.wants("comment")
	if comments {
		keys = append(keys, "comment")
	}
	slices.Sort(keys)
	o.key("fields")
	fo := objAt(o.buf)
	for _, k := range keys {
		fo.key(jsonKey(k))
		if comments && k == "comment" {
			fo.buf = st.appendComments(fo.buf, c, slot, rec, lim.comments)
		} else {
			fo.buf = append(fo.buf, rec.fields[k]...)
		}
	}
	o.buf = fo.done()
	for _, e := range expand {
		switch e {
		case "id", "key", "self", "fields":
		case "changelog":
			if rec.hasChangelog {
				o.key("changelog")
				o.buf = appendChangelog(o.buf, rec, lim.histories)
			} else if v, ok := rec.extra[e]; ok {
				o.raw(e, v)
			}
		default:
			if v, ok := rec.extra[e]; ok {
				o.raw(e, v)
			}
		}
	}
	return o.done()
}

// appendChangelog appends the newest max histories, oldest first, with the
// total so truncation shows.
func appendChangelog(dst []byte, rec *issueRec, max int) []byte {
	hs := rec.histories[len(rec.histories)-min(len(rec.histories), max):]
	o := objAt(dst).num("startAt", 0).num("maxResults", len(hs)).num("total", len(rec.histories))
	o.key("histories")
	o.buf = appendEntries(o.buf, hs)
	return o.done()
}

// appendComments appends the first max comments with the total.
func (st *store) appendComments(dst []byte, c genContext, slot int32, rec *issueRec, max int) []byte {
	cs := rec.comments[:min(len(rec.comments), max)]
	o := objAt(dst)
	o.key("comments")
	o.buf = appendEntries(o.buf, cs)
	return o.str("self", c.base+"/rest/api/3/issue/"+strconv.FormatInt(st.id[slot], 10)+"/comment").
		num("maxResults", len(cs)).num("total", len(rec.comments)).num("startAt", 0).done()
}

// appendEntries appends the entries' JSON as an array.
func appendEntries(dst []byte, es []entry) []byte {
	dst = append(dst, '[')
	for i, e := range es {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, e.raw...)
	}
	return append(dst, ']')
}

// jsonKey is k as the inside of a JSON string; field ids never need
// escaping, but AddIssue accepts any.
func jsonKey(k string) string {
	if strings.ContainsAny(k, "\"\\") {
		return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(k)
	}
	return k
}

func raws(es []entry) []json.RawMessage {
	out := make([]json.RawMessage, len(es))
	for i, e := range es {
		out[i] = e.raw
	}
	return out
}

// sortedEntries orders histories or comments by created, then id.
func sortedEntries(es []entry) {
	slices.SortStableFunc(es, func(a, b entry) int {
		if a.at != b.at {
			if a.at < b.at {
				return -1
			}
			return 1
		}
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
}

// jsonObj writes a JSON object member by member. Raw values go in as
// they are — everything the simulator stores is compact JSON already — so
// nested documents are not re-validated at every level, which is what
// json.Marshal of a json.RawMessage does and what made rendering slow.
type jsonObj struct {
	buf   []byte
	start int // where the object begins in buf
}

func newObj(size int) *jsonObj { return &jsonObj{buf: append(make([]byte, 0, size), '{')} }

// objAt starts an object at the end of dst.
func objAt(dst []byte) *jsonObj { return &jsonObj{buf: append(dst, '{'), start: len(dst)} }

func (o *jsonObj) key(k string) {
	if len(o.buf) > o.start+1 {
		o.buf = append(o.buf, ',')
	}
	o.buf = append(o.buf, '"')
	o.buf = append(o.buf, k...) // keys are plain identifiers
	o.buf = append(o.buf, '"', ':')
}

func (o *jsonObj) raw(k string, v []byte) *jsonObj {
	o.key(k)
	o.buf = append(o.buf, v...)
	return o
}

func (o *jsonObj) str(k, v string) *jsonObj {
	o.key(k)
	o.buf = appendJSONString(o.buf, v)
	return o
}

// appendJSONString appends s as a JSON string. Unlike encoding/json it
// leaves <, > and & alone; both are valid JSON.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\t':
			b = append(b, '\\', 't')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, '\\', 'u', '0', '0', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func (o *jsonObj) val(k string, v any) *jsonObj { return o.raw(k, mustJSON(v)) }

func (o *jsonObj) num(k string, n int) *jsonObj {
	o.key(k)
	o.buf = strconv.AppendInt(o.buf, int64(n), 10)
	return o
}

func (o *jsonObj) done() json.RawMessage { return append(o.buf, '}') }

// rawObject writes a map with sorted keys, values as they are.
func rawObject(m map[string]json.RawMessage) json.RawMessage {
	size := 2
	for k, v := range m {
		size += len(k) + len(v) + 4
	}
	return appendRawObject(make([]byte, 0, size), m)
}

// appendRawObject appends rawObject's answer to dst.
func appendRawObject(dst []byte, m map[string]json.RawMessage) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	o := objAt(dst)
	for _, k := range keys {
		if strings.ContainsAny(k, "\"\\") {
			o.key(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(k))
			o.buf = append(o.buf, m[k]...)
			continue
		}
		o.raw(k, m[k])
	}
	return o.done()
}

// rawArray writes raw values as a JSON array.
func rawArray(vs []json.RawMessage) json.RawMessage {
	size := 2
	for _, v := range vs {
		size += len(v) + 1
	}
	b := append(make([]byte, 0, size), '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, v...)
	}
	return append(b, ']')
}

// compactJSON is raw without insignificant space (input from AddIssue).
func compactJSON(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}
