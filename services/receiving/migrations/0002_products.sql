-- The product catalogue: which SKU a scanned GTIN is. A GTIN names one SKU.
CREATE TABLE products (
    sku         text PRIMARY KEY,
    description text,
    uom         text        NOT NULL DEFAULT 'EA',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE product_gtins (
    gtin text PRIMARY KEY,
    sku  text NOT NULL REFERENCES products (sku) ON DELETE CASCADE
);
CREATE INDEX product_gtins_sku ON product_gtins (sku);
