package eventstore

import (
	"reflect"
	"testing"
	"unsafe"

	"github.com/esctl/esctl/eventstore/driver"
)

// TestStoredEventLayout: storedEventsFrom reinterprets the driver's events
// as StoredEvents; that holds only while both have the same fields, in the
// same order, of the same types.
func TestStoredEventLayout(t *testing.T) {
	same := func(a, b reflect.Type) {
		t.Helper()
		if a.Size() != b.Size() || a.NumField() != b.NumField() {
			t.Fatalf("%v and %v differ in size or fields", a, b)
		}
		for i := range a.NumField() {
			fa, fb := a.Field(i), b.Field(i)
			if fa.Name != fb.Name || fa.Offset != fb.Offset || fa.Type.Size() != fb.Type.Size() || fa.Type.Kind() != fb.Type.Kind() {
				t.Fatalf("%v.%s and %v.%s differ", a, fa.Name, b, fb.Name)
			}
		}
	}
	same(reflect.TypeFor[StoredEvent](), reflect.TypeFor[driver.StoredEvent]())
	same(reflect.TypeFor[Event](), reflect.TypeFor[driver.Event]())
	if unsafe.Sizeof(StoredEvent{}) != unsafe.Sizeof(driver.StoredEvent{}) {
		t.Fatal("sizes differ")
	}
	src := []driver.StoredEvent{{Event: driver.Event{AggregateID: "a", AggregateVersion: 2, Type: "T", Timestamp: 3, Payload: []byte(`{}`)}, Position: 4}}
	got := storedEventsFrom(src)
	want := StoredEvent{Event: Event{AggregateID: "a", AggregateVersion: 2, Type: "T", Timestamp: 3, Payload: []byte(`{}`)}, Position: 4}
	if !reflect.DeepEqual(got, []StoredEvent{want}) {
		t.Fatalf("got %+v", got)
	}
}
