package jirasim

// StoredRecords is how many issues the site holds as stored records
// (mutated or prebuilt) rather than generating them per request.
func StoredRecords(s *Site) int {
	st := s.rest.st
	st.mu.RLock()
	defer st.mu.RUnlock()
	return len(st.recs)
}
