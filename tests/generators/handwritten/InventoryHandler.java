package com.example.inventory.server;

import com.example.inventory.GetItemRequest;
import com.example.inventory.InventoryGrpc;
import com.example.inventory.Item;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/** Serves items from memory; the request and response classes are protoc's. */
public final class InventoryHandler extends InventoryGrpc.InventoryImplBase {
    private final Map<String, Item> items = new ConcurrentHashMap<>();

    public void put(Item item) {
        items.put(item.getSku(), item);
    }

    @Override
    public void getItem(GetItemRequest request, StreamObserver<Item> response) {
        Item item = items.get(request.getSku());
        if (item == null) {
            response.onError(Status.NOT_FOUND.withDescription(request.getSku()).asRuntimeException());
            return;
        }
        response.onNext(item);
        response.onCompleted();
    }
}
