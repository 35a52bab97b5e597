package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// reader walks the syntax tree of one file, collecting errors and
// warnings as it goes instead of stopping at the first.
type reader struct {
	file        string
	errs, warns []Problem
	anchors     map[string]ast.Node
}

func (r *reader) errorf(line int, key, format string, args ...any) {
	r.errs = append(r.errs, Problem{File: r.file, Line: line, Key: key, Message: fmt.Sprintf(format, args...)})
}

func (r *reader) warnf(line int, key, format string, args ...any) {
	r.warns = append(r.warns, Problem{File: r.file, Line: line, Key: key, Message: fmt.Sprintf(format, args...)})
}

func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int { return a.Line - b.Line })
}

// entry is one key of a mapping with its value.
type entry struct {
	key   string
	line  int // the key's line
	value ast.Node
}

// field describes a key a mapping may have.
type field struct {
	name string
	read func(e entry)
}

func (r *reader) read(data []byte) *Config {
	c := &Config{}
	f, err := parse(data)
	if err != nil {
		r.syntaxError(data, err)
		return c
	}
	if len(f.Docs) > 1 {
		r.errorf(lineOf(f.Docs[1]), "", "has more than one YAML document: keep one")
	}
	if len(f.Docs) == 0 || f.Docs[0].Body == nil {
		r.errorf(0, "", "is empty: it needs the satellite, integrations and jira sections (download it from SEI: GET /api/v1/integrations/{id}/satellite.yml)")
		return c
	}
	r.anchors = map[string]ast.Node{}
	root, ok := r.mapping(f.Docs[0].Body, "", 1)
	if !ok {
		return c
	}
	var sawSatellite, sawIntegrations bool
	r.fields(root, "", []field{
		{"satellite", func(e entry) { sawSatellite = true; r.satellite(e, &c.Satellite) }},
		{"integrations", func(e entry) { sawIntegrations = true; c.Integrations = r.integrations(e) }},
		{"jira", func(e entry) { r.jira(e, &c.Jira) }},
	})
	if !sawSatellite {
		r.errorf(1, "satellite", "is required: satellite: {tenant: …, api_key: …, url: https://…/api}")
	}
	if !sawIntegrations {
		r.errorf(1, "integrations", "is required: a list with one entry per SEI integration")
	}
	if c.Jira.AllowUnsafeSSL {
		r.warnf(lineOfKey(root, "jira"), "jira.allow_unsafe_ssl", "is true: the certificates of the Jira sites and their ADFS are not verified (encrypted, but to a server nobody vouched for)")
	}
	return c
}

func (r *reader) satellite(e entry, s *Satellite) {
	m, ok := r.mapping(e.value, "satellite", e.line)
	if !ok {
		return
	}
	var tenant, key, u *entry
	r.fields(m, "satellite", []field{
		{"tenant", func(e entry) { tenant = &e }},
		{"api_key", func(e entry) { key = &e }},
		{"url", func(e entry) { u = &e }},
	})
	line := lineOf(e.value)
	if v, ok := r.requiredString(tenant, "satellite.tenant", line); ok {
		s.Tenant = v
	}
	if v, ok := r.requiredString(key, "satellite.api_key", line); ok {
		if msg := checkSecret(v); msg != "" {
			r.errorf(key.line, "satellite.api_key", "%s", msg)
		} else {
			s.APIKey = Secret(v)
		}
	}
	if v, ok := r.requiredString(u, "satellite.url", line); ok {
		clean, msg, warn := checkServiceURL(v)
		switch {
		case msg != "":
			r.errorf(u.line, "satellite.url", "%s", msg)
		default:
			s.URL = clean
			if warn != "" {
				r.warnf(u.line, "satellite.url", "%s", warn)
			}
			if !strings.HasSuffix(clean, "/api") {
				r.warnf(u.line, "satellite.url", "does not end in /api, as SEI's API root does (…/api/v1/… is appended to it)")
			}
		}
	}
}

func (r *reader) integrations(e entry) []Integration {
	n := r.resolve(e.value)
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		if _, null := n.(*ast.NullNode); null || n == nil {
			r.errorf(e.line, "integrations", "is empty: list at least one integration")
		} else {
			r.errorf(lineOf(n), "integrations", "must be a list (each entry starting with \"- id: …\")")
		}
		return nil
	}
	if len(seq.Values) == 0 {
		r.errorf(e.line, "integrations", "is empty: list at least one integration")
	}
	out := make([]Integration, 0, len(seq.Values))
	seen := map[string]string{}
	for i, item := range seq.Values {
		path := fmt.Sprintf("integrations[%d]", i)
		it, ok := r.integration(item, path)
		if !ok {
			continue
		}
		if first, dup := seen[it.ID]; dup && it.ID != "" {
			r.errorf(it.Line, path+".id", "repeats the id of %s: each integration once", first)
		}
		seen[it.ID] = path
		out = append(out, it)
	}
	return out
}

// integration reads one entry of integrations.
func (r *reader) integration(n ast.Node, path string) (Integration, bool) {
	it := Integration{Line: lineOf(n)}
	m, ok := r.mapping(n, path, it.Line)
	if !ok {
		return it, false
	}
	got := map[string]*entry{}
	keep := func(e entry) { got[e.key] = &e }
	r.fields(m, path, []field{
		{"id", keep}, {"url", keep}, {"application", keep}, {"authentication", keep},
		{"username", keep}, {"api_key", keep},
		{"adfs_url", keep}, {"adfs_client_id", keep}, {"adfs_resource", keep}, {"adfs_username", keep}, {"adfs_password", keep},
		{"metadata", func(e entry) { r.metadata(e, path+".metadata", &it) }},
	})
	key := func(name string) string { return path + "." + name }
	str := func(name string) (string, bool) {
		e := got[name]
		if e == nil {
			return "", false
		}
		v, ok := r.scalar(e.value, key(name), e.line)
		if ok && v == "" {
			return "", false // "username:" with nothing after it is no username
		}
		return v, ok
	}

	if v, ok := r.requiredString(got["id"], key("id"), it.Line); ok {
		if !validID(v) {
			r.errorf(got["id"].line, key("id"), "must be the SEI integration's id (letters, digits, - _ . ~; at most 128)")
		}
		it.ID = v
	}
	if v, ok := r.requiredString(got["url"], key("url"), it.Line); ok {
		if u, msg := parseHTTPURL(v); msg != "" {
			r.errorf(got["url"].line, key("url"), "%s", msg)
		} else {
			it.URL = strings.TrimRight(u.String(), "/")
		}
	}
	it.Application = "jira"
	if v, ok := str("application"); ok {
		if !strings.EqualFold(v, "jira") {
			r.errorf(got["application"].line, key("application"), "must be jira: the satellite ingests Jira Data Center")
		}
	}

	method, _ := str("authentication")
	method = strings.ToLower(method)
	username, hasUser := str("username")
	switch method {
	case "":
		method = AuthPAT
		if hasUser {
			method = AuthBasic
		}
	case AuthPAT, AuthBasic, AuthADFS:
	default:
		r.errorf(got["authentication"].line, key("authentication"), "must be adfs (or pat or basic; leave it out for a personal access token or a username and password)")
		return it, true
	}
	it.Auth = method
	secret := func(name, what string) Secret {
		e := got[name]
		if e == nil {
			r.errorf(it.Line, key(name), "is required: %s", what)
			return ""
		}
		v, ok := r.scalar(e.value, key(name), e.line)
		switch {
		case !ok:
			return "" // reported
		case v == "":
			r.errorf(e.line, key(name), "is required (it is empty): %s", what)
			return ""
		}
		if msg := checkSecret(v); msg != "" {
			r.errorf(e.line, key(name), "%s", msg)
			return ""
		}
		return Secret(v)
	}
	notWith := func(names ...string) {
		for _, name := range names {
			if e := got[name]; e != nil {
				r.errorf(e.line, key(name), "is not used with authentication %s", method)
			}
		}
	}
	adfsKeys := []string{"adfs_url", "adfs_client_id", "adfs_resource", "adfs_username", "adfs_password"}
	switch method {
	case AuthPAT:
		if hasUser {
			r.errorf(got["username"].line, key("username"), "is not used with a personal access token (authentication pat): leave it out, or use basic for a password")
		}
		notWith(adfsKeys...)
		it.APIKey = secret("api_key", "the personal access token (Jira: Profile, Personal Access Tokens)")
	case AuthBasic:
		if !hasUser {
			r.errorf(lineOfEntry(got["username"], it.Line), key("username"), "is required with authentication basic: the account whose password api_key is")
		}
		notWith(adfsKeys...)
		it.Username = username
		it.APIKey = secret("api_key", "the password of "+orDefault(username, "the user"))
	case AuthADFS:
		for _, name := range []string{"username", "api_key"} {
			if e := got[name]; e != nil {
				r.errorf(e.line, key(name), "is not used with authentication adfs: the account is adfs_username and adfs_password")
			}
		}
		if v, ok := r.requiredString(got["adfs_url"], key("adfs_url"), it.Line); ok {
			if u, msg := parseHTTPURL(v); msg != "" {
				r.errorf(got["adfs_url"].line, key("adfs_url"), "%s", msg)
			} else {
				it.ADFS.URL = u.String()
			}
		}
		if v, ok := r.requiredString(got["adfs_client_id"], key("adfs_client_id"), it.Line); ok {
			it.ADFS.ClientID = v
		}
		if v, ok := r.requiredString(got["adfs_resource"], key("adfs_resource"), it.Line); ok {
			it.ADFS.Resource = v
		}
		if v, ok := r.requiredString(got["adfs_username"], key("adfs_username"), it.Line); ok {
			it.ADFS.Username = v
		}
		it.ADFS.Password = secret("adfs_password", "the password of adfs_username at ADFS")
	}
	if it.Timezone == "" {
		it.Timezone = "UTC"
	}
	return it, true
}

func (r *reader) metadata(e entry, path string, it *Integration) {
	m, ok := r.mapping(e.value, path, e.line)
	if !ok {
		return
	}
	r.fields(m, path, []field{
		{"timezone", func(e entry) {
			v, ok := r.scalar(e.value, path+".timezone", e.line)
			switch {
			case !ok || v == "":
			case !validTimezone(v):
				r.errorf(e.line, path+".timezone", "must be an IANA time zone such as Europe/Berlin or UTC")
			default:
				it.Timezone = v
			}
		}},
		{"sensitive_fields", func(e entry) {
			n := r.resolve(e.value)
			if isNull(n) {
				return
			}
			seq, ok := n.(*ast.SequenceNode)
			if !ok {
				r.errorf(e.line, path+".sensitive_fields", "must be a list of Jira field ids or names, e.g. [summary, description]")
				return
			}
			for i, v := range seq.Values {
				s, ok := r.scalar(v, fmt.Sprintf("%s.sensitive_fields[%d]", path, i), lineOf(v))
				switch {
				case !ok:
				case strings.TrimSpace(s) == "":
					r.errorf(lineOf(v), fmt.Sprintf("%s.sensitive_fields[%d]", path, i), "is empty")
				default:
					it.SensitiveFields = append(it.SensitiveFields, strings.TrimSpace(s))
				}
			}
		}},
	})
}

func (r *reader) jira(e entry, j *Jira) {
	m, ok := r.mapping(e.value, "jira", e.line)
	if !ok {
		return
	}
	r.fields(m, "jira", []field{
		{"allow_unsafe_ssl", func(e entry) {
			switch v := r.resolve(e.value).(type) {
			case *ast.BoolNode:
				j.AllowUnsafeSSL = v.Value
			case *ast.NullNode:
			default:
				r.errorf(e.line, "jira.allow_unsafe_ssl", "must be true or false (unquoted)")
			}
		}},
	})
}

// fields dispatches a mapping's keys to their readers; unknown keys are
// warned about, with the known key they are likely a typo of.
func (r *reader) fields(m []entry, path string, known []field) {
	for _, e := range m {
		i := slices.IndexFunc(known, func(f field) bool { return f.name == e.key })
		if i >= 0 {
			known[i].read(e)
			continue
		}
		msg := "is not a key of satellite.yml here: ignored"
		if near := nearest(e.key, known); near != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", near)
		}
		r.warnf(e.line, join(path, e.key), "%s", msg)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// mapping returns a node's keys in order, or reports that it is not a
// mapping. Merge keys (<<: *anchor) are expanded; a key given twice is
// already a syntax error.
func (r *reader) mapping(n ast.Node, path string, line int) ([]entry, bool) {
	n = r.resolve(n)
	var values []*ast.MappingValueNode
	switch v := n.(type) {
	case *ast.MappingNode:
		values = v.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{v}
	case *ast.NullNode, nil:
		r.errorf(line, orDefault(path, "the file"), "is empty: it must be a mapping of keys")
		return nil, false
	default:
		what := orDefault(path, "the file")
		r.errorf(lineOf(n), what, "must be a mapping of keys (key: value), not %s", describe(n))
		return nil, false
	}
	var out []entry
	for _, mv := range values {
		if mv.Key == nil {
			continue
		}
		if mv.Key.IsMergeKey() {
			merged, ok := r.mapping(mv.Value, path, lineOf(mv.Value))
			if ok {
				out = append(out, merged...)
			}
			continue
		}
		k, ok := r.resolve(mv.Key).(ast.ScalarNode)
		if !ok {
			r.errorf(lineOf(mv.Key), path, "has a key that is not a plain name")
			continue
		}
		out = append(out, entry{key: scalarText(k), line: lineOf(mv.Key), value: mv.Value})
	}
	return out, true
}

// scalar returns a scalar's text as written (id: 4711 is "4711", not a
// number to reformat); a null is "".
func (r *reader) scalar(n ast.Node, key string, line int) (string, bool) {
	n = r.resolve(n)
	switch v := n.(type) {
	case nil, *ast.NullNode:
		return "", true
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		return strings.TrimRight(v.Value.Value, "\n"), true
	case ast.ScalarNode:
		return scalarText(v), true
	}
	r.errorf(lineOf(n), key, "must be a single value, not %s", describe(n))
	return "", false
}

// requiredString reads a required, non-empty scalar; line is where to
// report its absence.
func (r *reader) requiredString(e *entry, key string, line int) (string, bool) {
	if e == nil {
		r.errorf(line, key, "is required")
		return "", false
	}
	v, ok := r.scalar(e.value, key, e.line)
	if !ok {
		return "", false
	}
	if strings.TrimSpace(v) == "" {
		r.errorf(e.line, key, "is required (it is empty)")
		return "", false
	}
	return strings.TrimSpace(v), true
}

// resolve follows anchors, aliases and tags to the node they stand for.
func (r *reader) resolve(n ast.Node) ast.Node {
	for range 32 { // an alias chain this long is a loop
		switch v := n.(type) {
		case *ast.AnchorNode:
			if v.Name != nil {
				r.anchors[v.Name.GetToken().Value] = v.Value
			}
			n = v.Value
		case *ast.AliasNode:
			if v.Value == nil {
				return nil
			}
			target, ok := r.anchors[v.Value.GetToken().Value]
			if !ok {
				return nil
			}
			n = target
		case *ast.TagNode:
			n = v.Value
		default:
			return n
		}
	}
	return nil
}

func scalarText(n ast.ScalarNode) string {
	if s, ok := n.(*ast.StringNode); ok {
		return s.Value
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return fmt.Sprint(n.GetValue())
}

func isNull(n ast.Node) bool {
	_, ok := n.(*ast.NullNode)
	return n == nil || ok
}

func describe(n ast.Node) string {
	switch n.(type) {
	case *ast.SequenceNode:
		return "a list"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	}
	return "a single value"
}

func lineOf(n ast.Node) int {
	if n == nil {
		return 0
	}
	if d, ok := n.(*ast.DocumentNode); ok && d.Body == nil {
		return 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}

func lineOfEntry(e *entry, fallback int) int {
	if e == nil {
		return fallback
	}
	return e.line
}

func lineOfKey(m []entry, key string) int {
	for _, e := range m {
		if e.key == key {
			return e.line
		}
	}
	return 0
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// nearest is the known key a typo most likely meant (edit distance ≤ 2).
func nearest(key string, known []field) string {
	best, dist := "", 3
	for _, f := range known {
		if d := editDistance(strings.ToLower(key), f.name); d < dist {
			best, dist = f.name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// parse runs the YAML parser, turning a panic of it (a bug of the
// library on some odd input) into a plain syntax error: a hand-edited
// file must get a message, not a stack trace.
func parse(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("the YAML parser failed on this file (%v)", r)
		}
	}()
	return parser.ParseBytes(data, 0)
}

// syntaxError reports malformed YAML with its line and the key it is
// under, found from the tokens before the error (the parser says where,
// not under which key).
func (r *reader) syntaxError(data []byte, err error) {
	var se *yaml.SyntaxError
	if !errors.As(err, &se) || se.Token == nil || se.Token.Position == nil {
		r.errorf(0, "", "is not valid YAML: %s", firstLine(err.Error()))
		return
	}
	pos := se.Token.Position
	tokens := lexer.Tokenize(string(data))
	// A quote left open swallows the lines after it, and the parser
	// stumbles only where the next quote closes it. No value of this file
	// spans lines, so a quoted one that does is where the mistake is.
	for _, tk := range tokens {
		if tk.Position == nil || tk.Position.Offset > pos.Offset {
			break
		}
		if (tk.Type == token.SingleQuoteType || tk.Type == token.DoubleQuoteType) && strings.Contains(strings.TrimRight(tk.Origin, "\n"), "\n") {
			r.errorf(tk.Position.Line, keyPathBefore(tokens, tk.Position), "is not valid YAML: the quote opened on this line is not closed on it")
			return
		}
	}
	r.errorf(pos.Line, keyPathBefore(tokens, pos), "is not valid YAML: %s", se.Message)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// keyPathBefore reconstructs the path of the last key that starts at or
// before pos (integrations[0].api_key), from indentation for block style
// and nesting for flow style. It is a best effort for messages only.
func keyPathBefore(tokens token.Tokens, pos *token.Position) string {
	type frame struct {
		col, flow int
		name      string
		idx       int
	}
	var stack []frame
	flow := 0
	for _, tk := range tokens {
		if tk.Position == nil || tk.Position.Offset > pos.Offset {
			break
		}
		switch tk.Type {
		case token.MappingStartType, token.SequenceStartType:
			flow++
		case token.MappingEndType, token.SequenceEndType:
			for len(stack) > 0 && stack[len(stack)-1].flow >= flow {
				stack = stack[:len(stack)-1]
			}
			flow = max(flow-1, 0)
		case token.SequenceEntryType:
			if flow == 0 {
				for len(stack) > 0 && stack[len(stack)-1].col > tk.Position.Column {
					stack = stack[:len(stack)-1]
				}
				if len(stack) > 0 {
					stack[len(stack)-1].idx++
				}
			}
		default:
			if tk.Next == nil || tk.Next.Type != token.MappingValueType {
				continue
			}
			col := tk.Position.Column
			for len(stack) > 0 {
				top := stack[len(stack)-1]
				if (flow == 0 && top.flow == 0 && top.col >= col) || (flow > 0 && top.flow == flow) {
					stack = stack[:len(stack)-1]
					continue
				}
				break
			}
			stack = append(stack, frame{col: col, flow: flow, name: tk.Value, idx: -1})
		}
	}
	var b strings.Builder
	for i, f := range stack {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(f.name)
		if f.idx >= 0 && i < len(stack)-1 {
			fmt.Fprintf(&b, "[%d]", f.idx)
		}
	}
	return b.String()
}
