package integrations

import (
	"context"
	"strconv"
)

// withSalesforceCases fills in, in place, the Salesforce cases of issues
// (issue 6: the links ingestion extracts from the integration's
// salesforce_field), with one query for all of them.
func (s *Service) withSalesforceCases(ctx context.Context, integrationID string, issues []Issue) error {
	ids := make([]int64, 0, len(issues))
	for _, is := range issues {
		if id, err := strconv.ParseInt(is.ID, 10, 64); err == nil {
			ids = append(ids, id)
		}
	}
	cases, err := s.DB.SalesforceCases(ctx, integrationID, ids)
	if err != nil {
		return err
	}
	for i := range issues {
		id, _ := strconv.ParseInt(issues[i].ID, 10, 64)
		issues[i].SalesforceCases = cases[id]
		if issues[i].SalesforceCases == nil {
			issues[i].SalesforceCases = []string{}
		}
	}
	return nil
}
