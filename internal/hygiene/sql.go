package hygiene

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sei-io/jira-connect/internal/store"
)

// The report reads hygiene_issues (migration 00005), where what it needs of
// each issue is already plain columns: custom misses compare the slot their
// field's value is kept in (s<k>: text, n<k>: number or epoch seconds), so
// no JSON is read while reporting. The SQL is written once and spelled per
// dialect only where the databases differ: time arithmetic between
// columns (interval vs julianday), substring search (strpos vs instr) and
// byte-wise comparison of dates kept as text. Values travel as parameters;
// only slot numbers and whole seconds of thresholds are written into the
// SQL.
//
// gorm's Raw reads every "?" as a placeholder, even inside a literal, so no
// literal here may contain one.

// sqlb accumulates a statement's parameters, in the order their
// placeholders appear in its text.
type sqlb struct {
	pg   bool
	args []any
}

func newSQL(dialect string) *sqlb { return &sqlb{pg: dialect == store.DialectPostgres} }

// arg adds a parameter and returns its placeholder.
func (b *sqlb) arg(v any) string {
	if t, ok := v.(time.Time); ok {
		v = t.UTC()
	}
	b.args = append(b.args, v)
	return "?"
}

// beyond is "later > earlier + seconds" for two time columns.
func (b *sqlb) beyond(later, earlier string, seconds int64) string {
	if b.pg {
		return fmt.Sprintf("%s > %s + interval '%d seconds'", later, earlier, seconds)
	}
	return fmt.Sprintf("julianday(%s) > julianday(%s) + %s", later, earlier, strconv.FormatFloat(float64(seconds)/86400, 'g', -1, 64))
}

// contains is a case-sensitive substring test (LIKE is case-insensitive on
// SQLite and would need escaping).
func (b *sqlb) contains(text, param string) string {
	if b.pg {
		return fmt.Sprintf("strpos(%s, %s) > 0", text, param)
	}
	return fmt.Sprintf("instr(%s, %s) > 0", text, param)
}

// dateCmp compares yyyy-mm-dd texts byte by byte, whatever the database's
// collation.
func (b *sqlb) dateCmp(expr, op, param string) string {
	if b.pg {
		return fmt.Sprintf("%s COLLATE \"C\" %s %s", expr, op, param)
	}
	return fmt.Sprintf("%s %s %s", expr, op, param)
}

// not is the negation that counts an unknown (NULL) as true: "does not
// equal" holds for an issue without a value.
func not(cond string) string { return "(CASE WHEN " + cond + " THEN 0 ELSE 1 END) = 1" }

// epochSeconds is t as the slots keep instants.
func epochSeconds(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }

// customCond is the SQL condition of a custom miss, as of now in loc, over
// the hygiene_issues row "i".
func (b *sqlb) customCond(c storedCustom, now time.Time, loc *time.Location) string {
	s, n := fmt.Sprintf("i.s%d", c.Slot), fmt.Sprintf("i.n%d", c.Slot)
	kind := c.Source.Kind
	switch c.Operator {
	case OpMissing:
		return "(" + s + " IS NULL AND " + n + " IS NULL)"
	case OpEquals, OpNotEquals:
		var eq string
		switch kind {
		case KindNumber:
			eq = n + " = " + b.arg(toFloat(c.Value))
		case KindDate:
			eq = b.dateCmp(s, "=", b.arg(c.Value))
		default:
			eq = s + " = " + b.arg(c.Value)
		}
		if c.Operator == OpNotEquals {
			return not(eq)
		}
		return eq
	case OpGreaterThan, OpLessThan:
		op := ">"
		if c.Operator == OpLessThan {
			op = "<"
		}
		switch kind {
		case KindNumber:
			return n + " " + op + " " + b.arg(toFloat(c.Value))
		case KindDate:
			return b.dateCmp(s, op, b.arg(c.Value))
		default: // datetime
			t, _ := parseInstant(fmt.Sprint(c.Value), loc.String())
			return n + " " + op + " " + b.arg(epochSeconds(t))
		}
	case OpContains, OpNotContains:
		v := fmt.Sprint(c.Value)
		if kind == KindArray {
			v = store.ListSeparator + v + store.ListSeparator // one of the values, whole
		}
		has := b.contains(s, b.arg(v))
		if c.Operator == OpNotContains {
			return not(has)
		}
		return has
	case OpOlderThanDays:
		days := int(toFloat(c.Value))
		if kind == KindDate {
			// A date is a day where the team works: older than n days
			// means before the day n days before today, there.
			y, m, d := now.In(loc).Date()
			cut := time.Date(y, m, d-days, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
			return b.dateCmp(s, "<", b.arg(cut))
		}
		return n + " < " + b.arg(epochSeconds(now.Add(-time.Duration(days)*24*time.Hour)))
	}
	return "1 = 0"
}

func toFloat(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int:
		return float64(n)
	case string:
		f, _ := strconv.ParseFloat(strings.TrimSpace(n), 64)
		return f
	}
	return 0
}
