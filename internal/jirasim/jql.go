package jirasim

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The JQL the simulator understands: clauses joined by AND (parentheses
// allowed), then an optional ORDER BY.
//
//	project = KEY | project in (A, "B")       key, id or name
//	id|issue|issuekey|key = X | in (X, Y)     X an id or a key
//	id|issue|issuekey|key  >, >=, <, <= N     N a numeric id
//	created|updated  =, >, >=, <, <= T        T epoch milliseconds (a bare integer),
//	                                          "yyyy-MM-dd HH:mm", "yyyy/MM/dd HH:mm",
//	                                          "yyyy-MM-dd", "yyyy/MM/dd" — in the
//	                                          site's time zone — or relative
//	                                          (-5d, -12h, -30m, -2w, "-1w 2d")
//	ORDER BY id|key|created|updated [ASC|DESC], ...
//
// A date string is read in the time zone of the user making the call
// (for the app, Site.TimeZone, what /myself says): an ingester that
// formats its watermark as a date in another zone misses or repeats
// hours. Epoch milliseconds mean the same everywhere.
//
// Anything else is refused with a 400 and Jira's kind of message.

// jqlError is a query Jira would refuse with 400.
type jqlError struct{ msg string }

func (e *jqlError) Error() string { return e.msg }

func jqlErrorf(format string, args ...any) error {
	return &jqlError{fmt.Sprintf(format, args...)}
}

// MsgUnboundedJQL is Jira Cloud's answer to a search without a
// restriction on /search/jql.
const MsgUnboundedJQL = "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."

type tokKind int

const (
	tEOF tokKind = iota
	tWord
	tString
	tOp
	tComma
	tLParen
	tRParen
)

type token struct {
	kind tokKind
	text string
	pos  int // 1-based character
}

func lexJQL(q string) ([]token, error) {
	var toks []token
	rs := []rune(q)
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			i++
		case r == '(':
			toks = append(toks, token{tLParen, "(", i + 1})
			i++
		case r == ')':
			toks = append(toks, token{tRParen, ")", i + 1})
			i++
		case r == ',':
			toks = append(toks, token{tComma, ",", i + 1})
			i++
		case r == '"' || r == '\'':
			start := i
			var b strings.Builder
			i++
			for ; i < len(rs) && rs[i] != r; i++ {
				if rs[i] == '\\' && i+1 < len(rs) {
					i++
				}
				b.WriteRune(rs[i])
			}
			if i >= len(rs) {
				return nil, jqlErrorf("Error in the JQL Query: The quoted string '%s' has not been completed. (line 1, character %d)", string(rs[start+1:]), start+1)
			}
			i++
			toks = append(toks, token{tString, b.String(), start + 1})
		case strings.ContainsRune("=!<>~", r):
			start := i
			i++
			if i < len(rs) && (rs[i] == '=' || rs[i] == '~') && r != '=' && r != '~' {
				i++
			}
			toks = append(toks, token{tOp, string(rs[start:i]), start + 1})
		default:
			start := i
			for i < len(rs) && !strings.ContainsRune(" \t\n\r(),\"'=!<>~", rs[i]) {
				i++
			}
			toks = append(toks, token{tWord, string(rs[start:i]), start + 1})
		}
	}
	return append(toks, token{tEOF, "", len(rs) + 1}), nil
}

type jqlValue struct {
	text   string
	quoted bool
	pos    int
}

type jqlClause struct {
	field  string // lower-case, aliases resolved
	op     string // "=", "!=", ">", ">=", "<", "<=", "in"
	values []jqlValue
	pos    int
}

type orderTerm struct {
	field string // id, key, created, updated
	desc  bool
}

type parsedJQL struct {
	clauses []jqlClause
	order   []orderTerm
}

func isKeyword(t token, kw string) bool { return t.kind == tWord && strings.EqualFold(t.text, kw) }

var fieldAliases = map[string]string{
	"project": "project",
	"id":      "id", "issue": "id", "issuekey": "id", "key": "id",
	"created": "created", "createddate": "created",
	"updated": "updated", "updateddate": "updated",
}

// parseJQL parses the supported subset.
func parseJQL(q string) (*parsedJQL, error) {
	toks, err := lexJQL(q)
	if err != nil {
		return nil, err
	}
	p := &jqlParser{toks: toks}
	out := &parsedJQL{}
	if !isKeyword(p.peek(), "order") && p.peek().kind != tEOF {
		if err := p.conjunction(out, 0); err != nil {
			return nil, err
		}
	}
	if isKeyword(p.peek(), "order") {
		p.next()
		if t := p.next(); !isKeyword(t, "by") {
			return nil, p.expecting("'by'", t)
		}
		for {
			t := p.next()
			if t.kind != tWord && t.kind != tString {
				return nil, p.expecting("a field name", t)
			}
			f := strings.ToLower(t.text)
			switch f {
			case "issuekey":
				f = "key"
			case "createddate":
				f = "created"
			case "updateddate":
				f = "updated"
			case "id", "key", "created", "updated":
			default:
				return nil, jqlErrorf("Not able to sort using field '%s'.", t.text)
			}
			term := orderTerm{field: f}
			if d := p.peek(); isKeyword(d, "asc") || isKeyword(d, "desc") {
				p.next()
				term.desc = strings.EqualFold(d.text, "desc")
			}
			out.order = append(out.order, term)
			if p.peek().kind != tComma {
				break
			}
			p.next()
		}
	}
	if t := p.peek(); t.kind != tEOF {
		if isKeyword(t, "or") {
			return nil, jqlErrorf("Error in the JQL Query: jirasim supports only AND between clauses, not OR (line 1, character %d)", t.pos)
		}
		return nil, p.expecting("either 'OR', 'AND', 'ORDER BY' or the end of the query", t)
	}
	return out, nil
}

type jqlParser struct {
	toks []token
	i    int
}

func (p *jqlParser) peek() token { return p.toks[p.i] }

func (p *jqlParser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *jqlParser) expecting(what string, got token) error {
	if got.kind == tEOF {
		return jqlErrorf("Error in the JQL Query: Expecting %s but reached the end of the query. (line 1, character %d)", what, got.pos)
	}
	return jqlErrorf("Error in the JQL Query: Expecting %s but got '%s'. (line 1, character %d)", what, got.text, got.pos)
}

// conjunction parses clause (AND clause)*, with parenthesised groups.
func (p *jqlParser) conjunction(out *parsedJQL, depth int) error {
	for {
		if p.peek().kind == tLParen {
			p.next()
			if err := p.conjunction(out, depth+1); err != nil {
				return err
			}
			if t := p.next(); t.kind != tRParen {
				return p.expecting("')'", t)
			}
		} else if err := p.clause(out); err != nil {
			return err
		}
		t := p.peek()
		switch {
		case isKeyword(t, "and"):
			p.next()
		case isKeyword(t, "or"):
			return jqlErrorf("Error in the JQL Query: jirasim supports only AND between clauses, not OR (line 1, character %d)", t.pos)
		default:
			return nil
		}
	}
}

func (p *jqlParser) clause(out *parsedJQL) error {
	ft := p.next()
	if ft.kind != tWord && ft.kind != tString {
		return p.expecting("a field name", ft)
	}
	if isKeyword(ft, "not") {
		return jqlErrorf("Error in the JQL Query: jirasim does not support NOT (line 1, character %d)", ft.pos)
	}
	field, ok := fieldAliases[strings.ToLower(ft.text)]
	if !ok {
		if strings.HasPrefix(strings.ToLower(ft.text), "cf[") || strings.Contains(ft.text, "customfield") {
			return jqlErrorf("jirasim does not search on custom field '%s'.", ft.text)
		}
		return jqlErrorf("Field '%s' does not exist or you do not have permission to view it.", ft.text)
	}
	c := jqlClause{field: field, pos: ft.pos}
	ot := p.next()
	switch {
	case ot.kind == tOp && ot.text != "~" && ot.text != "!~":
		c.op = ot.text
	case isKeyword(ot, "in"):
		c.op = "in"
	case isKeyword(ot, "not") && isKeyword(p.peek(), "in"), isKeyword(ot, "is"), ot.kind == tOp:
		return jqlErrorf("Error in the JQL Query: jirasim does not support the operator '%s' (line 1, character %d)", ot.text, ot.pos)
	default:
		return p.expecting("operator", ot)
	}
	if c.op == "in" {
		if t := p.next(); t.kind != tLParen {
			return p.expecting("'('", t)
		}
		for {
			v := p.next()
			if v.kind != tWord && v.kind != tString {
				return p.expecting("a value", v)
			}
			c.values = append(c.values, jqlValue{v.text, v.kind == tString, v.pos})
			t := p.next()
			if t.kind == tRParen {
				break
			}
			if t.kind != tComma {
				return p.expecting("',' or ')'", t)
			}
		}
	} else {
		v := p.next()
		if v.kind != tWord && v.kind != tString {
			return p.expecting("a value", v)
		}
		if p.peek().kind == tLParen {
			return jqlErrorf("Error in the JQL Query: jirasim does not support the function '%s' (line 1, character %d)", v.text, v.pos)
		}
		c.values = []jqlValue{{v.text, v.kind == tString, v.pos}}
	}
	out.clauses = append(out.clauses, c)
	return nil
}

// jqlQuery is a parsed query bound to a site: what matches and in which
// order.
type jqlQuery struct {
	projects   map[int32]bool // nil: any project
	ids        map[int64]bool // nil: any id
	idLo, idHi int64
	crLo, crHi int64
	upLo, upHi int64
	order      []orderTerm // with id appended as the tie-breaker
	text       string
}

// bind resolves a parsed query's values against the store: project and
// issue references must exist (and be visible), as Jira requires.
func (st *store) bind(p *parsedJQL, text string, loc *time.Location, now time.Time, allowUnbounded bool) (*jqlQuery, error) {
	if len(p.clauses) == 0 && !allowUnbounded {
		return nil, &jqlError{MsgUnboundedJQL}
	}
	q := &jqlQuery{idLo: math.MinInt64, idHi: math.MaxInt64, crLo: math.MinInt64, crHi: math.MaxInt64,
		upLo: math.MinInt64, upHi: math.MaxInt64, text: text}
	for _, c := range p.clauses {
		switch c.field {
		case "project":
			if c.op != "=" && c.op != "in" {
				return nil, jqlErrorf("jirasim supports only '=' and 'in' on project, not '%s'.", c.op)
			}
			set := map[int32]bool{}
			for _, v := range c.values {
				i := st.projectRef(v.text)
				if i < 0 {
					return nil, jqlErrorf("The value '%s' does not exist for the field 'project'.", v.text)
				}
				if q.projects == nil || q.projects[int32(i)] {
					set[int32(i)] = true
				}
			}
			q.projects = set
		case "id":
			if c.op == "=" || c.op == "in" {
				set := map[int64]bool{}
				for _, v := range c.values {
					slot, ok := st.slotByIDOrKey(v.text)
					if !ok || !st.visible(slot) {
						return nil, jqlErrorf("An issue with key '%s' does not exist for field 'id'.", v.text)
					}
					if id := st.id[slot]; q.ids == nil || q.ids[id] {
						set[id] = true
					}
				}
				q.ids = set
				continue
			}
			n, err := strconv.ParseInt(c.values[0].text, 10, 64)
			if err != nil {
				return nil, jqlErrorf("jirasim compares id only with numbers ('%s' %s '%s').", "id", c.op, c.values[0].text)
			}
			if err := narrow(&q.idLo, &q.idHi, c.op, n); err != nil {
				return nil, err
			}
		case "created", "updated":
			if c.op == "in" {
				return nil, jqlErrorf("jirasim does not support 'in' on %s.", c.field)
			}
			ms, err := jqlTime(c.values[0], c.field, loc, now)
			if err != nil {
				return nil, err
			}
			lo, hi := &q.crLo, &q.crHi
			if c.field == "updated" {
				lo, hi = &q.upLo, &q.upHi
			}
			if err := narrow(lo, hi, c.op, ms); err != nil {
				return nil, err
			}
		}
	}
	q.order = p.order
	if len(q.order) == 0 {
		// Jira's order without ORDER BY is its own business; never rely on it.
		q.order = []orderTerm{{field: "created", desc: true}}
	}
	hasID := false
	for _, t := range q.order {
		hasID = hasID || t.field == "id" || t.field == "key"
	}
	if !hasID {
		q.order = append(q.order, orderTerm{field: "id", desc: q.order[0].desc})
	}
	return q, nil
}

func narrow(lo, hi *int64, op string, v int64) error {
	switch op {
	case "=":
		*lo, *hi = max(*lo, v), min(*hi, v)
	case ">":
		if v == math.MaxInt64 {
			*lo = v
			*hi = math.MinInt64
			return nil
		}
		*lo = max(*lo, v+1)
	case ">=":
		*lo = max(*lo, v)
	case "<":
		if v == math.MinInt64 {
			*hi = v
			*lo = math.MaxInt64
			return nil
		}
		*hi = min(*hi, v-1)
	case "<=":
		*hi = min(*hi, v)
	default:
		return jqlErrorf("jirasim does not support '%s' here.", op)
	}
	return nil
}

var relativeTime = regexp.MustCompile(`^([+-]?)(\d+)([wdhm])$`)

// jqlTime reads a JQL date value as epoch milliseconds.
func jqlTime(v jqlValue, field string, loc *time.Location, now time.Time) (int64, error) {
	s := strings.TrimSpace(v.text)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	if parts := strings.Fields(s); len(parts) > 0 {
		var d time.Duration
		ok := true
		for i, part := range parts {
			m := relativeTime.FindStringSubmatch(part)
			if m == nil || (i > 0 && m[1] != "") {
				ok = false
				break
			}
			n, _ := strconv.ParseInt(m[2], 10, 64)
			unit := map[string]time.Duration{"w": 7 * 24 * time.Hour, "d": 24 * time.Hour, "h": time.Hour, "m": time.Minute}[m[3]]
			d += time.Duration(n) * unit
		}
		if ok {
			if strings.HasPrefix(s, "-") {
				d = -d
			}
			return now.Add(d).UnixMilli(), nil
		}
	}
	for _, layout := range []string{"2006-01-02 15:04", "2006/01/02 15:04", "2006-01-02", "2006/01/02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t.UnixMilli(), nil
		}
	}
	return 0, jqlErrorf("Date value '%s' for field '%s' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.", v.text, field)
}
