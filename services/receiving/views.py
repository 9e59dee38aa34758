"""The receiving responses, each built from its record in one place. The views refuse unknown
fields, so a field the record or the event gains and the view lacks fails loudly."""

from __future__ import annotations

from dataclasses import asdict

from services.receiving.records import LotRecord, ProductRecord
from services.receiving.schemas import LotView, ProductView, ReceiptView
from shared.contracts.events import GoodsReceived


def receipt_view(event: GoodsReceived, lot: LotRecord, *, new_lot: bool) -> ReceiptView:
    """The answer to a receipt: what `goods-received` said, and where the lot stands now."""
    return ReceiptView(
        **event.model_dump(exclude={"inputs"}),
        inputs=[item.model_dump(mode="json") for item in event.inputs],
        lot_received_quantity=lot.received_quantity,
        new_lot=new_lot,
    )


def lot_view(lot: LotRecord) -> LotView:
    return LotView(
        lot_id=lot.lot_id,
        lot_code=lot.lot_code,
        sku=lot.sku,
        gtin=lot.gtin,
        uom=lot.uom,
        supplier=lot.supplier,
        supplier_lot_code=lot.supplier_lot_code,
        production_date=lot.production_date,
        expiry_date=lot.expiry_date,
        best_before_date=lot.best_before_date,
        unit_cost=lot.cost,
        received_quantity=lot.received_quantity,
        consumed_quantity=lot.consumed_quantity,
        first_received_at=lot.first_received_at,
        last_received_at=lot.last_received_at,
    )


def product_view(product: ProductRecord) -> ProductView:
    return ProductView(**asdict(product))
