"""The inventory service's handler for the Thrift server (the gen-py package is thrift's)."""

import logging

from inventory import Inventory
from inventory.ttypes import Item, NotFound
from thrift.protocol import TBinaryProtocol
from thrift.server import TServer
from thrift.transport import TSocket, TTransport

log = logging.getLogger(__name__)


class InventoryHandler:
    def __init__(self):
        self.items: dict[str, Item] = {}

    def getItem(self, sku):
        try:
            return self.items[sku]
        except KeyError:
            raise NotFound(sku=sku) from None

    def listItems(self, pageSize):
        return sorted(self.items.values(), key=lambda item: item.sku)[:pageSize]

    def touch(self, sku):
        log.info("touched %s", sku)


def serve(port: int = 9090) -> None:
    processor = Inventory.Processor(InventoryHandler())
    transport = TSocket.TServerSocket(port=port)
    server = TServer.TSimpleServer(
        processor,
        transport,
        TTransport.TBufferedTransportFactory(),
        TBinaryProtocol.TBinaryProtocolFactory(),
    )
    server.serve()
