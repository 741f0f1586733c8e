package api

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/smithy-go"

	"pvlink.dev/pvlink/ctl/cloudwatch"
)

// aws-sdk-go-v2's own CloudWatch client, which speaks only RPC v2 CBOR,
// lists the endpoint's metrics, reads their statistics and data (its
// timestamps decoded from CBOR's tag 1) and gets a refusal's code.
func TestCloudWatchAnswersTheGoSDKInCBOR(t *testing.T) {
	srv, consumer, _, minute := sevenNewConnections(t)

	client := cw.New(cw.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials: aws.NewCredentialsCache(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: consumer.AccessKeyID, SecretAccessKey: consumer.SecretAccessKey}, nil
		})),
	})
	ctx := context.Background()
	list, err := client.ListMetrics(ctx, &cw.ListMetricsInput{Namespace: aws.String(cloudwatch.NamespaceEndpoints)})
	if err != nil || len(list.Metrics) != 1 || aws.ToString(list.Metrics[0].MetricName) != "NewConnections" ||
		len(list.Metrics[0].Dimensions) != 1 || aws.ToString(list.Metrics[0].Dimensions[0].Value) != "vpce-1" {
		t.Fatalf("ListMetrics: %+v, %v", list, err)
	}
	if all, err := client.ListMetrics(ctx, &cw.ListMetricsInput{}); err != nil || len(all.Metrics) != 1 {
		t.Fatalf("ListMetrics without input: %+v, %v", all, err)
	}

	sdkDims := []cwtypes.Dimension{{Name: aws.String("VPC Endpoint Id"), Value: aws.String("vpce-1")}}
	stats := &cw.GetMetricStatisticsInput{
		Namespace: aws.String(cloudwatch.NamespaceEndpoints), MetricName: aws.String("NewConnections"), Dimensions: sdkDims,
		StartTime: aws.Time(minute.Add(-5 * time.Minute)), EndTime: aws.Time(minute.Add(time.Minute + 500*time.Millisecond)),
		Period: aws.Int32(60), Statistics: []cwtypes.Statistic{cwtypes.StatisticSum, cwtypes.StatisticMaximum},
	}
	got, err := client.GetMetricStatistics(ctx, stats)
	if err != nil || aws.ToString(got.Label) != "NewConnections" || len(got.Datapoints) != 1 {
		t.Fatalf("GetMetricStatistics: %+v, %v", got, err)
	}
	if p := got.Datapoints[0]; aws.ToFloat64(p.Sum) != 7 || aws.ToFloat64(p.Maximum) != 7 || p.Unit != cwtypes.StandardUnitCount || !aws.ToTime(p.Timestamp).Equal(minute) {
		t.Fatalf("GetMetricStatistics' datapoint: sum %v, maximum %v, unit %s, at %v (want 7, 7, Count, %v)",
			aws.ToFloat64(p.Sum), aws.ToFloat64(p.Maximum), p.Unit, aws.ToTime(p.Timestamp), minute)
	}

	data, err := client.GetMetricData(ctx, &cw.GetMetricDataInput{
		StartTime: aws.Time(minute.Add(-5 * time.Minute)), EndTime: aws.Time(minute.Add(time.Minute)),
		MetricDataQueries: []cwtypes.MetricDataQuery{{Id: aws.String("n"), MetricStat: &cwtypes.MetricStat{
			Metric: &cwtypes.Metric{Namespace: aws.String(cloudwatch.NamespaceEndpoints), MetricName: aws.String("NewConnections"), Dimensions: sdkDims},
			Period: aws.Int32(60), Stat: aws.String("Sum"),
		}}},
	})
	if err != nil || len(data.MetricDataResults) != 1 {
		t.Fatalf("GetMetricData: %+v, %v", data, err)
	}
	if r := data.MetricDataResults[0]; aws.ToString(r.Id) != "n" || r.StatusCode != cwtypes.StatusCodeComplete ||
		len(r.Values) != 1 || r.Values[0] != 7 || len(r.Timestamps) != 1 || !r.Timestamps[0].Equal(minute) {
		t.Fatalf("GetMetricData's result: id %s, status %s, values %v, timestamps %v", aws.ToString(r.Id), r.StatusCode, r.Values, r.Timestamps)
	}

	stats.Period = aws.Int32(61)
	_, err = client.GetMetricStatistics(ctx, stats)
	var ae smithy.APIError
	var re *awshttp.ResponseError
	if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidParameterValue" || !errors.As(err, &re) || re.ServiceRequestID() == "" {
		t.Fatalf("a period of 61: %v, want InvalidParameterValue and the request's id", err)
	}
	if _, err := client.DescribeAlarms(ctx, &cw.DescribeAlarmsInput{}); !errors.As(err, &ae) || ae.ErrorCode() != "InvalidAction" {
		t.Fatalf("DescribeAlarms: %v, want InvalidAction", err)
	}
}
