package jirasim

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseJQL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		jql  string
		want string // clauses and order as printed by show, or "error: substring"
	}{
		{``, ` | `},
		{`ORDER BY id`, ` | id`},
		{`order by updated asc, ID desc`, ` | updated,id desc`},
		{`project = SEI`, `project = SEI | `},
		{`project="SEI"`, `project = SEI | `},
		{`project in (A, "B c", 'D')`, `project in A,B c,D | `},
		{`project = SEI AND id > 10 AND id <= 20 ORDER BY id ASC`, `project = SEI; id > 10; id <= 20 | id`},
		{`(project = A AND id >= 5) and updated < -5d`, `project = A; id >= 5; updated < -5d | `},
		{`updated >= 1717243200000 ORDER BY updated ASC, id ASC`, `updated >= 1717243200000 | updated,id`},
		{`updated >= "2024-06-01 10:00" order by created desc`, `updated >= 2024-06-01 10:00 | created desc`},
		{`updatedDate > '2024/06/01'`, `updated > 2024/06/01 | `},
		{`issuekey in (A-1, A-2) ORDER BY key`, `id in A-1,A-2 | key`},
		{`key = "A-1"`, `id = A-1 | `},
		{`id in (10001,10002)`, `id in 10001,10002 | `},
		{`issue = 7 ORDER BY issuekey DESC`, `id = 7 | key desc`},
		{`created >= "-1w 2d"`, `created >= -1w 2d | `},
		{`project = "say \"hi\""`, `project = say "hi" | `},

		{`project = A OR project = B`, `error: only AND`},
		{`NOT project = A`, `error: NOT`},
		{`summary ~ "x"`, `error: Field 'summary' does not exist`},
		{`cf[10020] = 1`, `error: custom field`},
		{`project ~ A`, `error: operator '~'`},
		{`project is EMPTY`, `error: operator 'is'`},
		{`project not in (A)`, `error: operator 'not'`},
		{`project =`, `error: Expecting a value but reached the end`},
		{`project = A AND`, `error: Expecting a field name but reached the end`},
		{`project = A extra`, `error: Expecting either 'OR', 'AND', 'ORDER BY' or the end of the query but got 'extra'`},
		{`project in (A, B`, `error: Expecting ',' or ')'`},
		{`project = "A`, `error: has not been completed`},
		{`ORDER BY summary`, `error: Not able to sort using field 'summary'`},
		{`ORDER id`, `error: Expecting 'by'`},
		{`updated > startOfDay()`, `error: function 'startOfDay'`},
		{`(project = A`, `error: Expecting ')'`},
	} {
		t.Run(tc.jql, func(t *testing.T) {
			p, err := parseJQL(tc.jql)
			var got string
			if err != nil {
				got = "error: " + err.Error()
				if !strings.HasPrefix(tc.want, "error: ") || !strings.Contains(got, strings.TrimPrefix(tc.want, "error: ")) {
					t.Fatalf("parseJQL(%q) = %s, want %s", tc.jql, got, tc.want)
				}
				return
			}
			if got = show(p); got != tc.want {
				t.Fatalf("parseJQL(%q) = %q, want %q", tc.jql, got, tc.want)
			}
		})
	}
}

func show(p *parsedJQL) string {
	var cs, os []string
	for _, c := range p.clauses {
		var vs []string
		for _, v := range c.values {
			vs = append(vs, v.text)
		}
		cs = append(cs, c.field+" "+c.op+" "+strings.Join(vs, ","))
	}
	for _, o := range p.order {
		s := o.field
		if o.desc {
			s += " desc"
		}
		os = append(os, s)
	}
	return strings.Join(cs, "; ") + " | " + strings.Join(os, ",")
}

func TestBindJQL(t *testing.T) {
	t.Parallel()
	st := newStore()
	base := "http://jira"
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for i, key := range []string{"A-1", "A-2", "B-1"} {
		raw := fmt.Sprintf(`{"id":"%d","key":%q,"fields":{"created":"2025-05-0%dT10:00:00.000+0000","updated":"2025-05-0%dT10:00:00.000+0000"}}`, 10+i, key, i+1, i+2)
		if err := st.addRecord(base, []byte(raw), now); err != nil {
			t.Fatal(err)
		}
	}
	st.flags[2] |= flagHidden // B-1
	berlin, _ := time.LoadLocation("Europe/Berlin")

	for _, tc := range []struct {
		jql       string
		unbounded bool
		want      string // matching keys in order, or "error: substring"
	}{
		{``, false, "error: " + MsgUnboundedJQL},
		{`ORDER BY key DESC`, false, "error: " + MsgUnboundedJQL},
		{`ORDER BY key DESC`, true, "A-2 A-1"},
		{`project = A ORDER BY key DESC`, false, "A-2 A-1"},
		{`project = a`, false, "A-2 A-1"}, // default order: created DESC
		{`project in (A, B) ORDER BY id`, false, "A-1 A-2"},
		{`project = C`, false, "error: The value 'C' does not exist for the field 'project'."},
		{`project = A AND project = B`, false, ""},
		{`id = 11`, false, "A-2"},
		{`key = a-2`, false, "A-2"},
		{`issuekey in (A-1, 11) ORDER BY id`, false, "A-1 A-2"},
		{`key in (A-1, A-9)`, false, "error: An issue with key 'A-9' does not exist for field 'id'."},
		{`id = 12`, false, "error: An issue with key '12' does not exist"}, // hidden
		{`id > 10 ORDER BY id`, false, "A-2"},
		{`id >= 10 AND id < 11 ORDER BY id`, false, "A-1"},
		{`id > A-1`, false, "error: compares id only with numbers"},
		{`updated >= "2025-05-03 12:00" ORDER BY id`, false, "A-2"},
		{`updated >= "2025-05-03 12:01" ORDER BY id`, false, ""},
		{`updated <= 2025-05-03 ORDER BY id`, false, "A-1"},
		{fmt.Sprintf(`updated = %d`, time.Date(2025, 5, 2, 10, 0, 0, 0, time.UTC).UnixMilli()), false, "A-1"},
		{`updated > -31d ORDER BY updated DESC`, false, "A-2 A-1"},
		{`updated > -30d ORDER BY updated DESC`, false, "A-2"},
		{`created < -31d`, false, "A-1"},
		{`created < -32d`, false, ""},
		{`created > "2025-05-01 12:00" ORDER BY created`, false, "A-2"},
		{`updated > "yesterday"`, false, "error: Date value 'yesterday' for field 'updated' is invalid"},
	} {
		t.Run(tc.jql, func(t *testing.T) {
			p, err := parseJQL(tc.jql)
			if err != nil {
				t.Fatal(err)
			}
			q, err := st.bind(p, tc.jql, berlin, now, tc.unbounded)
			var got string
			if err != nil {
				got = "error: " + err.Error()
			} else {
				slots, more := st.run(q, nil, 100)
				var keys []string
				for _, s := range slots {
					keys = append(keys, st.keyOf(s))
				}
				got = strings.Join(keys, " ")
				if more {
					t.Fatal("more than 100")
				}
			}
			if isErr := strings.HasPrefix(tc.want, "error: "); (isErr && !strings.Contains(got, strings.TrimPrefix(tc.want, "error: "))) || (!isErr && got != tc.want) {
				t.Fatalf("%q: got %q, want %q", tc.jql, got, tc.want)
			}
		})
	}
}

// Dates in JQL are read in the caller's time zone: the same string is a
// different instant for a user in Berlin and one in UTC.
func TestJQLTimeZone(t *testing.T) {
	t.Parallel()
	berlin, _ := time.LoadLocation("Europe/Berlin")
	now := time.Now()
	v := jqlValue{text: "2025-07-01 09:00"}
	inBerlin, err1 := jqlTime(v, "updated", berlin, now)
	inUTC, err2 := jqlTime(v, "updated", time.UTC, now)
	if err1 != nil || err2 != nil || inUTC-inBerlin != 2*3600_000 {
		t.Fatalf("berlin %d, utc %d (%v %v)", inBerlin, inUTC, err1, err2)
	}
	ms, err := jqlTime(jqlValue{text: "1751353200000"}, "updated", berlin, now)
	if err != nil || ms != 1751353200000 {
		t.Fatalf("epoch ms: %d %v", ms, err)
	}
	for text, want := range map[string]time.Duration{"-5d": -5 * 24 * time.Hour, "-12h": -12 * time.Hour, "-30m": -30 * time.Minute, "-1w 2d": -9 * 24 * time.Hour, "2d": 48 * time.Hour} {
		ms, err := jqlTime(jqlValue{text: text}, "updated", berlin, now)
		if err != nil || ms != now.Add(want).UnixMilli() {
			t.Errorf("%s: %v %v", text, time.UnixMilli(ms), err)
		}
	}
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	if err := narrow(&lo, &hi, ">", math.MaxInt64); err != nil || lo <= hi {
		t.Errorf("> max: [%d, %d]", lo, hi)
	}
}
