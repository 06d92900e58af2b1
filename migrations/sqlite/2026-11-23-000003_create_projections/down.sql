DROP TABLE projection_state; DROP TABLE approval_decisions; DROP TABLE approvals; DROP TABLE lineage_edges; DROP TABLE entities;
