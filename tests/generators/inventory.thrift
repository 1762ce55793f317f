// A small inventory service: the input of tests/test_generated_real.py (Apache Thrift).
namespace py inventory
namespace java com.example.inventory
namespace go inventory
namespace cpp inventory
namespace rb Inventory
namespace php Inventory

enum Status {
  ACTIVE = 1,
  RETIRED = 2,
}

struct Item {
  1: required string sku,
  2: optional string name,
  3: i32 quantity = 0,
  4: list<string> tags,
  5: Status status = Status.ACTIVE,
}

exception NotFound {
  1: string sku,
}

service Inventory {
  Item getItem(1: string sku) throws (1: NotFound missing),
  list<Item> listItems(1: i32 pageSize),
  oneway void touch(1: string sku),
}
