package ingest

import (
	"reflect"
	"strconv"
	"sync"

	json "github.com/goccy/go-json"

	"github.com/sei-io/jira-connect/internal/jira"
)

// knownFields are the issue fields the model reads into columns, typed.
// A search page is decoded straight into them (pageDecoder): decoding
// fields into a map of raw values and each value again was half of the
// ingester's JSON work (BENCHMARKS.md).
type knownFields struct {
	Summary        *string         `json:"summary"`
	Description    json.RawMessage `json:"description"`
	IssueType      *namedRef       `json:"issuetype"`
	Project        *namedRef       `json:"project"`
	Status         *statusRef      `json:"status"`
	Priority       *namedRef       `json:"priority"`
	Assignee       *UserRef        `json:"assignee"`
	Reporter       *UserRef        `json:"reporter"`
	Creator        *UserRef        `json:"creator"`
	Created        *jira.Time      `json:"created"`
	Updated        *jira.Time      `json:"updated"`
	ResolutionDate *jira.Time      `json:"resolutiondate"`
	DueDate        *string         `json:"duedate"`
	Components     []namedRef      `json:"components"`
	FixVersions    []namedRef      `json:"fixVersions"`
	Labels         []string        `json:"labels"`
	Parent         *struct {
		Key string `json:"key"`
	} `json:"parent"`
	Comment *commentField `json:"comment"`
}

type statusRef struct {
	Name           string `json:"name"`
	StatusCategory struct {
		Key string `json:"key"`
	} `json:"statusCategory"`
}

type commentField struct {
	Comments []Comment `json:"comments"`
	Total    int       `json:"total"`
}

// fieldSet is one issue's fields: those of the model typed, every other
// one (custom fields) as Jira sent it.
type fieldSet struct {
	known  knownFields
	custom map[string]json.RawMessage
}

// knownKeys maps each knownFields JSON key to its struct field index.
var knownKeys = func() map[string]int {
	m := map[string]int{}
	t := reflect.TypeFor[knownFields]()
	for i := range t.NumField() {
		m[jsonName(t.Field(i))] = i
	}
	return m
}()

func jsonName(f reflect.StructField) string {
	tag := f.Tag.Get("json")
	for i := range len(tag) {
		if tag[i] == ',' {
			return tag[:i]
		}
	}
	return tag
}

// fieldSetOf reads a fields object decoded as a map (a single issue, a
// Data Center page rewritten to Cloud's shape): each model field decoded
// on its own, so a value of an unexpected shape costs that field only.
func fieldSetOf(f map[string]json.RawMessage) fieldSet {
	var fs fieldSet
	kv := reflect.ValueOf(&fs.known).Elem()
	for k, raw := range f {
		i, ok := knownKeys[k]
		if !ok {
			if fs.custom == nil {
				fs.custom = make(map[string]json.RawMessage, len(f))
			}
			fs.custom[k] = raw
			continue
		}
		if isNull(raw) {
			continue
		}
		dst := reflect.New(kv.Field(i).Type())
		if json.Unmarshal(raw, dst.Interface()) == nil {
			kv.Field(i).Set(dst.Elem())
		}
	}
	return fs
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

// issueHead is what an issue has besides its fields.
type issueHead struct {
	ID        string     `json:"id"`
	Key       string     `json:"key"`
	Changelog *changelog `json:"changelog"`
}

type changelog struct {
	StartAt    int       `json:"startAt"`
	MaxResults int       `json:"maxResults"`
	Total      int       `json:"total"`
	Histories  []History `json:"histories"`
}

// pageDecoder decodes a search page of one field list in one pass: its Go
// type is built for the list (reflect.StructOf), the model's fields typed
// and each other requested field (custom fields, whose ids differ between
// sites) a raw value of its own, so nothing is decoded twice.
type pageDecoder struct {
	page   reflect.Type // struct{Issues []issue; NextPageToken string; IsLast *bool}
	custom []string     // ids of the raw fields, in field order after the known ones
}

var pageDecoders sync.Map // field list (joined) -> *pageDecoder

// decoderFor returns the decoder of the field list (built once per list),
// nil when a field id cannot be a JSON name in a struct tag.
func decoderFor(fields []string) *pageDecoder {
	var key []byte
	for _, f := range fields {
		key = append(append(key, f...), ',')
	}
	if d, ok := pageDecoders.Load(string(key)); ok {
		return d.(*pageDecoder)
	}
	d := newPageDecoder(fields)
	if d == nil {
		return nil
	}
	actual, _ := pageDecoders.LoadOrStore(string(key), d)
	return actual.(*pageDecoder)
}

func newPageDecoder(fields []string) *pageDecoder {
	d := &pageDecoder{}
	sf := []reflect.StructField{{Name: "Known", Type: reflect.TypeFor[knownFields](), Anonymous: true}}
	seen := map[string]bool{}
	for _, f := range fields {
		if _, known := knownKeys[f]; known || seen[f] {
			continue
		}
		seen[f] = true
		if !safeFieldID(f) {
			return nil
		}
		sf = append(sf, reflect.StructField{Name: "C" + strconv.Itoa(len(d.custom)), Type: reflect.TypeFor[json.RawMessage](),
			Tag: reflect.StructTag(`json:"` + f + `"`)})
		d.custom = append(d.custom, f)
	}
	fieldsType := reflect.StructOf(sf)
	issue := reflect.StructOf([]reflect.StructField{
		{Name: "Head", Type: reflect.TypeFor[issueHead](), Anonymous: true},
		{Name: "Fields", Type: fieldsType, Tag: `json:"fields"`},
	})
	d.page = reflect.StructOf([]reflect.StructField{
		{Name: "Issues", Type: reflect.SliceOf(issue), Tag: `json:"issues"`},
		{Name: "NextPageToken", Type: reflect.TypeFor[string](), Tag: `json:"nextPageToken"`},
		{Name: "IsLast", Type: reflect.TypeFor[*bool](), Tag: `json:"isLast"`},
	})
	return d
}

// target is a new page for Jira's answer to be decoded into.
func (d *pageDecoder) target() any { return reflect.New(d.page).Interface() }

// issues turns a decoded page (from target) into parsed issues, and says
// the page's next token and whether it is the last.
func (d *pageDecoder) issues(target any) ([]*Parsed, string, bool, error) {
	page := reflect.ValueOf(target).Elem()
	list := page.Field(0)
	out := make([]*Parsed, list.Len())
	for i := range out {
		iss := list.Index(i)
		head := iss.Field(0).Addr().Interface().(*issueHead)
		fv := iss.Field(1)
		fs := fieldSet{known: *fv.Field(0).Addr().Interface().(*knownFields)}
		for j, id := range d.custom {
			if raw := fv.Field(1 + j).Bytes(); raw != nil {
				if fs.custom == nil {
					fs.custom = make(map[string]json.RawMessage, len(d.custom))
				}
				fs.custom[id] = raw
			}
		}
		p, err := parsed(head, fs)
		if err != nil {
			return nil, "", false, err
		}
		out[i] = p
	}
	isLast := false
	if b := page.Field(2); !b.IsNil() {
		isLast = b.Elem().Bool()
	}
	return out, page.Field(1).String(), isLast, nil
}

// safeFieldID reports whether a field id can be a struct tag's JSON name
// as it is. Jira's ids are letters, digits and underscores; a list with
// anything else is decoded the slower way (decoderFor returns nil).
func safeFieldID(id string) bool {
	for i := range len(id) {
		c := id[i]
		if c == '"' || c == '\\' || c == ',' || c == '`' || c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return id != ""
}
