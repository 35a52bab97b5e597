package jirasim

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
)

// A search walks an index in the query's order from the page token's
// position: the token holds the sort key of the last issue served, not
// an offset, so issues inserted or moved before that point do not shift
// the next page. Ordered by id (or created), paging is exact while other
// issues change; ordered by updated, an issue updated mid-paging moves
// behind the cursor and is served again — as in Jira.

// sortVal is one term of a sort key: a number, or for key a string.
type sortVal struct {
	N int64  `json:"n,omitempty"`
	S string `json:"s,omitempty"`
}

func (st *store) sortKey(slot int32, order []orderTerm) []sortVal {
	k := make([]sortVal, len(order))
	for i, t := range order {
		switch t.field {
		case "id":
			k[i].N = st.id[slot]
		case "created":
			k[i].N = st.created[slot]
		case "updated":
			k[i].N = st.updated[slot]
		case "key":
			k[i].S = st.keySortValue(slot)
		}
	}
	return k
}

func compareKeys(a, b []sortVal, order []orderTerm) int {
	for i, t := range order {
		c := cmp.Compare(a[i].N, b[i].N)
		if c == 0 {
			c = strings.Compare(a[i].S, b[i].S)
		}
		if t.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// match reports whether slot satisfies the query's restrictions.
func (q *jqlQuery) match(st *store, slot int32) bool {
	if !st.visible(slot) {
		return false
	}
	id := st.id[slot]
	if id < q.idLo || id > q.idHi {
		return false
	}
	if q.ids != nil && !q.ids[id] {
		return false
	}
	if q.projects != nil && !q.projects[st.proj[slot]] {
		return false
	}
	if c := st.created[slot]; c < q.crLo || c > q.crHi {
		return false
	}
	if u := st.updated[slot]; u < q.upLo || u > q.upHi {
		return false
	}
	return true
}

// run returns up to limit matching slots after the sort key after (nil
// for the first page), and whether more follow.
func (st *store) run(q *jqlQuery, after []sortVal, limit int) ([]int32, bool) {
	if ix, col, lo, hi, ok := st.indexFor(q); ok && q.ids == nil {
		return st.walkIndex(q, ix, col, lo, hi, after, limit)
	}
	// General case: collect, sort, cut. O(matches · log matches) a page.
	var cands []int32
	if q.ids != nil {
		for id := range q.ids {
			if slot, ok := st.slotByID(id); ok {
				cands = append(cands, slot)
			}
		}
	} else {
		cands = st.byID
	}
	type hit struct {
		slot int32
		key  []sortVal
	}
	var hits []hit
	for _, slot := range cands {
		if !q.match(st, slot) {
			continue
		}
		k := st.sortKey(slot, q.order)
		if after != nil && compareKeys(k, after, q.order) <= 0 {
			continue
		}
		hits = append(hits, hit{slot, k})
	}
	slices.SortFunc(hits, func(a, b hit) int { return compareKeys(a.key, b.key, q.order) })
	out := make([]int32, 0, min(limit, len(hits)))
	for _, h := range hits[:min(limit, len(hits))] {
		out = append(out, h.slot)
	}
	return out, len(hits) > limit
}

// indexFor picks the index that yields the query's order directly:
// ORDER BY id, or created/updated followed by id in the same direction.
func (st *store) indexFor(q *jqlQuery) (ix []int32, col []int64, lo, hi int64, ok bool) {
	o := q.order
	switch {
	case len(o) == 1 && o[0].field == "id":
		return st.byID, st.id, q.idLo, q.idHi, true
	case len(o) == 2 && o[1].field == "id" && o[0].desc == o[1].desc:
		switch o[0].field {
		case "created":
			return st.byCreated, st.created, q.crLo, q.crHi, true
		case "updated":
			return st.byUpdated, st.updated, q.upLo, q.upHi, true
		}
	}
	return nil, nil, 0, 0, false
}

func (st *store) walkIndex(q *jqlQuery, ix []int32, col []int64, lo, hi int64, after []sortVal, limit int) ([]int32, bool) {
	desc := q.order[0].desc
	// position of the first entry whose (value, id) >= (v, id)
	search := func(v, id int64) int {
		pos, _ := slices.BinarySearchFunc(ix, v, func(a int32, _ int64) int { return st.cmpBy(col, a, v, id) })
		return pos
	}
	var out []int32
	if !desc {
		pos := search(lo, -1<<63)
		if after != nil {
			// ids are integers: the first entry > (v, id) is the first >= (v, id+1).
			pos = max(pos, search(after[0].N, after[len(after)-1].N+1))
		}
		for ; pos < len(ix); pos++ {
			slot := ix[pos]
			if col[slot] > hi {
				break
			}
			if q.match(st, slot) {
				if len(out) == limit {
					return out, true
				}
				out = append(out, slot)
			}
		}
		return out, false
	}
	pos := search(hi, 1<<63-1) - 1 // the last entry with value <= hi
	if after != nil {
		pos = min(pos, search(after[0].N, after[len(after)-1].N)-1) // the last < (v, id)
	}
	for ; pos >= 0; pos-- {
		slot := ix[pos]
		if col[slot] < lo {
			break
		}
		if q.match(st, slot) {
			if len(out) == limit {
				return out, true
			}
			out = append(out, slot)
		}
	}
	return out, false
}

// Page tokens are opaque to clients; here they carry the last sort key
// served and a hash of the query they belong to, so a token replayed with
// another query is refused as Jira refuses it.
type pageToken struct {
	H string    `json:"h"`
	K []sortVal `json:"k"`
}

func encodePageToken(key []sortVal, jql string) string {
	b, _ := json.Marshal(pageToken{H: fmt.Sprintf("%x", jqlHash(jql)), K: key})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodePageToken(tok, jql string, terms int) ([]sortVal, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, false
	}
	var t pageToken
	if json.Unmarshal(b, &t) != nil || t.H != fmt.Sprintf("%x", jqlHash(jql)) || len(t.K) != terms {
		return nil, false
	}
	return t.K, true
}

func jqlHash(jql string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(strings.Join(strings.Fields(jql), " ")))
	return h.Sum64()
}
