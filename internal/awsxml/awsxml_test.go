package awsxml

import "testing"

func TestFieldIsTheFirstElementsText(t *testing.T) {
	doc := `<R><vpcEndpointId>vpce-1</vpcEndpointId><state>available</state><vpcEndpointId>vpce-2</vpcEndpointId><broken>x`
	for _, c := range []struct{ name, want string }{
		{"vpcEndpointId", "vpce-1"}, {"state", "available"}, {"missing", ""}, {"broken", ""},
	} {
		if got := Field(doc, c.name); got != c.want {
			t.Errorf("Field(%q) = %q, want %q", c.name, got, c.want)
		}
	}
}
