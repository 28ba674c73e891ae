// AWS SDK for JavaScript v3 against `callstream serve` (run by test_server_cli_clients.py).
//
//   node smoke.mjs create <endpoint> <stream>        CreateStream + DescribeStream + ListStreams
//   node smoke.mjs read <endpoint> <stream> <out>    GetDataEndpoint, ListFragments, GetMedia
//
// Credentials and region come from the environment (AWS_ACCESS_KEY_ID, ...). Prints one
// JSON object on stdout; exits non-zero with the error name on stderr on failure.
import { writeFileSync } from "node:fs";
import {
  CreateStreamCommand,
  DescribeStreamCommand,
  GetDataEndpointCommand,
  KinesisVideoClient,
  ListStreamsCommand,
} from "@aws-sdk/client-kinesis-video";
import {
  KinesisVideoArchivedMediaClient,
  ListFragmentsCommand,
} from "@aws-sdk/client-kinesis-video-archived-media";
import { GetMediaCommand, KinesisVideoMediaClient } from "@aws-sdk/client-kinesis-video-media";

const [command, endpoint, stream, out] = process.argv.slice(2);
const region = process.env.AWS_REGION ?? "us-east-1";
const control = new KinesisVideoClient({ endpoint, region, maxAttempts: 1 });

async function create() {
  const { StreamARN } = await control.send(
    new CreateStreamCommand({ StreamName: stream, DataRetentionInHours: 24, MediaType: "audio/L16" }),
  );
  const { StreamInfo } = await control.send(new DescribeStreamCommand({ StreamName: stream }));
  let missing = null;
  try {
    await control.send(new DescribeStreamCommand({ StreamName: `${stream}-missing` }));
  } catch (err) {
    missing = { name: err.name, status: err.$metadata?.httpStatusCode, message: err.message };
  }
  const listed = await control.send(
    new ListStreamsCommand({
      StreamNameCondition: { ComparisonOperator: "BEGINS_WITH", ComparisonValue: stream },
    }),
  );
  return {
    StreamARN,
    StreamInfo: {
      ...StreamInfo,
      CreationTime: StreamInfo.CreationTime.getTime(),
      CreationTimeIsDate: StreamInfo.CreationTime instanceof Date,
    },
    listed: listed.StreamInfoList.map((s) => s.StreamName),
    missing,
  };
}

async function read() {
  const endpoints = {};
  for (const api of ["LIST_FRAGMENTS", "GET_MEDIA"]) {
    const { DataEndpoint } = await control.send(
      new GetDataEndpointCommand({ StreamName: stream, APIName: api }),
    );
    endpoints[api] = DataEndpoint;
  }
  const archived = new KinesisVideoArchivedMediaClient({
    endpoint: endpoints.LIST_FRAGMENTS,
    region,
    maxAttempts: 1,
  });
  const fragments = [];
  let NextToken;
  do {
    const page = await archived.send(
      new ListFragmentsCommand({ StreamName: stream, MaxResults: 2, NextToken }),
    );
    fragments.push(...page.Fragments);
    NextToken = page.NextToken;
  } while (NextToken);
  const media = new KinesisVideoMediaClient({ endpoint: endpoints.GET_MEDIA, region, maxAttempts: 1 });
  const resp = await media.send(
    new GetMediaCommand({ StreamName: stream, StartSelector: { StartSelectorType: "EARLIEST" } }),
  );
  const bytes = await resp.Payload.transformToByteArray();
  writeFileSync(out, bytes);
  return {
    endpoints,
    contentType: resp.ContentType,
    bytes: bytes.length,
    fragments: fragments.map((f) => ({
      FragmentNumber: f.FragmentNumber,
      FragmentSizeInBytes: f.FragmentSizeInBytes,
      FragmentLengthInMilliseconds: f.FragmentLengthInMilliseconds,
      ProducerTimestamp: f.ProducerTimestamp.getTime(),
      ServerTimestamp: f.ServerTimestamp.getTime(),
    })),
  };
}

try {
  const result = command === "create" ? await create() : await read();
  process.stdout.write(JSON.stringify(result));
} catch (err) {
  process.stderr.write(`${err.name}: ${err.message}\n${err.stack}\n`);
  process.exit(1);
}
