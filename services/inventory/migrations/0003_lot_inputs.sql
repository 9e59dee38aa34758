-- Which lots a produced lot was made from (goods-received `inputs`). A lot made from a
-- recalled lot is recalled too, whether it is received after the recall or the recall
-- arrives after it.
CREATE TABLE lot_inputs (
    lot_id       uuid NOT NULL,
    input_lot_id uuid NOT NULL,
    PRIMARY KEY (lot_id, input_lot_id)
);
CREATE INDEX lot_inputs_input ON lot_inputs (input_lot_id);
