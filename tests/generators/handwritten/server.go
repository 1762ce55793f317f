// Package main serves the inventory over gRPC from an in-memory map.
package main

//go:generate protoc --go_out=. --go-grpc_out=. inventory.proto

import (
	"context"
	"log"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "example.com/inventory"
)

type server struct {
	pb.UnimplementedInventoryServer
	mu    sync.RWMutex
	items map[string]*pb.Item
}

func (s *server) GetItem(ctx context.Context, req *pb.GetItemRequest) (*pb.Item, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	item, ok := s.items[req.GetSku()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no item %q", req.GetSku())
	}
	return item, nil
}

func main() {
	listener, err := net.Listen("tcp", ":50051")
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	grpcServer := grpc.NewServer()
	pb.RegisterInventoryServer(grpcServer, &server{items: map[string]*pb.Item{}})
	log.Fatal(grpcServer.Serve(listener))
}
