-- The recall loop: what customers answered, what came back, reminders, and drills.

-- The FDA effectiveness check level and the target a recall must reach before it closes,
-- fixed when it is issued; an override of that target at close is audited here.
ALTER TABLE recalls
    ADD COLUMN check_level       text,
    ADD COLUMN target_percent    numeric,
    ADD COLUMN close_override    text;

-- Every customer response, once per response_id (a re-sent one changes nothing).
CREATE TABLE recall_responses (
    response_id  text PRIMARY KEY,
    recall_id    text        NOT NULL REFERENCES recalls (recall_id),
    customer_id  text        NOT NULL,
    kind         text        NOT NULL,
    channel      text,
    responded_at timestamptz NOT NULL,
    note         text,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recall_responses_customer ON recall_responses (recall_id, customer_id);

-- Units a customer reported per lot, per response: the latest report of a lot stands.
CREATE TABLE recall_reported_units (
    response_id  text        NOT NULL REFERENCES recall_responses (response_id),
    recall_id    text        NOT NULL,
    customer_id  text        NOT NULL,
    lot_id       uuid        NOT NULL,
    responded_at timestamptz NOT NULL,
    on_hand      numeric,
    destroyed    numeric,
    returned     numeric,
    PRIMARY KEY (response_id, lot_id)
);
CREATE INDEX recall_reported_units_recall ON recall_reported_units (recall_id, customer_id, lot_id);

-- Units of a recalled lot that an affected customer sent back, counted for that recall.
CREATE TABLE recall_returns (
    recall_id    text        NOT NULL REFERENCES recalls (recall_id),
    return_id    text        NOT NULL,
    line_no      integer     NOT NULL,
    customer_id  text        NOT NULL,
    lot_id       uuid        NOT NULL,
    quantity     numeric     NOT NULL,
    returned_at  timestamptz NOT NULL,
    PRIMARY KEY (recall_id, return_id, line_no)
);
CREATE INDEX recall_returns_customer ON recall_returns (recall_id, customer_id, lot_id);

-- Reminders sent: one row per (recall, customer, n), so the same n never goes twice, across
-- restarts and replicas.
CREATE TABLE recall_reminders (
    recall_id   text        NOT NULL REFERENCES recalls (recall_id),
    customer_id text        NOT NULL,
    reminder    integer     NOT NULL,
    sent_at     timestamptz NOT NULL,
    PRIMARY KEY (recall_id, customer_id, reminder)
);

-- Drills: recalls computed and timed, never issued. Kept apart from `recalls`, so nothing that
-- follows open recalls (late notices, reminders, returns) can ever see one.
CREATE TABLE recall_drills (
    drill_id                text PRIMARY KEY,
    requested_at            timestamptz NOT NULL,
    requested_by            text        NOT NULL,
    reason                  text        NOT NULL,
    classification          text        NOT NULL,
    scope                   jsonb       NOT NULL,
    affected_lots           integer     NOT NULL,
    affected_customer_count integer     NOT NULL,
    shipped_quantity        numeric     NOT NULL,
    check_level             text        NOT NULL,
    sample_size             integer     NOT NULL,
    stages                  jsonb       NOT NULL,
    total_ms                numeric     NOT NULL
);
CREATE INDEX recall_drills_requested_at ON recall_drills (requested_at);

-- Scope by the supplier's lot code and by GTIN.
CREATE INDEX lots_supplier_lot_code ON lots (supplier_lot_code) WHERE supplier_lot_code IS NOT NULL;
CREATE INDEX lots_gtin ON lots (gtin) WHERE gtin IS NOT NULL;
