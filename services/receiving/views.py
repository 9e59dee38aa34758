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


# Columns of a lot that its view shows as the objects they make: `supplier` and a `unit_cost`
# with its currency.
_SHOWN_AS_OBJECTS = frozenset({"supplier_id", "supplier_name", "unit_cost", "currency"})


def lot_view(lot: LotRecord) -> LotView:
    columns = {name: value for name, value in asdict(lot).items() if name not in _SHOWN_AS_OBJECTS}
    return LotView(**columns, supplier=lot.supplier, unit_cost=lot.cost)


def product_view(product: ProductRecord) -> ProductView:
    return ProductView(**asdict(product))
