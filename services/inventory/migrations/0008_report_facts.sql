-- What each lot shipped per day (the UTC date of the shipment, as `order-shipped` gives it), for
-- the reports' sell rates: lot_history keeps when inventory applied a shipment, not when it
-- left. Kept by the shipment handler in the transaction that moves the stock.
CREATE TABLE lot_shipped_days (
    lot_id   uuid    NOT NULL,
    day      date    NOT NULL,
    quantity numeric NOT NULL,
    PRIMARY KEY (lot_id, day)
);
CREATE INDEX lot_shipped_days_day ON lot_shipped_days (day);

-- Shipments applied before this migration: the day inventory applied them is the best known.
INSERT INTO lot_shipped_days (lot_id, day, quantity)
SELECT lot_id, (at AT TIME ZONE 'UTC')::date, sum(quantity)
FROM lot_history WHERE change = 'shipped'
GROUP BY lot_id, (at AT TIME ZONE 'UTC')::date;
