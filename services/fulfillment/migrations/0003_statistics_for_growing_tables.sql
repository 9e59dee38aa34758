-- Every order changes these tables. With the default thresholds PostgreSQL re-analyses a table
-- after a tenth of it has changed, so a projection that grows from empty (a new deployment, a
-- replay) plans key lookups with missing or stale statistics and scans whole tables instead.
-- Re-analyse and vacuum after 2 % instead.
ALTER TABLE orders SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.02);
ALTER TABLE order_lines SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.02);
ALTER TABLE allocations SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.02);
ALTER TABLE backorders SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.02);
