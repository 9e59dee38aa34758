-- The data-quality monitor's latest check (quality_check.py, docs/reports.md): one replica at
-- a time runs it on a schedule (an advisory lock); every replica serves it at
-- GET /reports/data-quality and exports its counts as gauges. One row, replaced by each check.
CREATE TABLE quality_checks (
    latest     boolean     PRIMARY KEY DEFAULT true CHECK (latest),
    checked_at timestamptz NOT NULL,
    report     jsonb       NOT NULL   -- the DataQualityReport: counts and examples per finding
);
