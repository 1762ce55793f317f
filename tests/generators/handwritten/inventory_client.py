"""A thin client for the inventory service.

The message classes and the stub come from inventory_pb2.py and inventory_pb2_grpc.py, which
`make protos` writes with grpc_tools.protoc; this module only adds retries and paging on top.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import inventory_pb2
import inventory_pb2_grpc

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


class InventoryClient:
    def __init__(self, target: str, attempts: int = 3, timeout: float = 5.0):
        self._channel = grpc.insecure_channel(target)
        self._stub = inventory_pb2_grpc.InventoryStub(self._channel)
        self._attempts = attempts
        self._timeout = timeout

    def get(self, sku: str) -> inventory_pb2.Item:
        for attempt in range(self._attempts):
            try:
                return self._stub.GetItem(inventory_pb2.GetItemRequest(sku=sku), timeout=self._timeout)
            except grpc.RpcError as error:
                if error.code() not in RETRYABLE or attempt == self._attempts - 1:
                    raise
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def all_items(self, page_size: int = 100) -> Iterator[inventory_pb2.Item]:
        token = ""
        while True:
            page = self._stub.ListItems(
                inventory_pb2.ListItemsRequest(page_size=page_size, page_token=token),
                timeout=self._timeout,
            )
            yield from page.items
            if not page.next_page_token:
                return
            token = page.next_page_token

    def close(self) -> None:
        self._channel.close()
