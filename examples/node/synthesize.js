#!/usr/bin/env node
// Synthesizes text with the TextToSpeechService and writes the WAV file the server returns.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

// The same .proto the server and the Python stubs are built from, read at run time: no
// generated JavaScript to keep in step.
const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'protos');
const PROTO_FILE = 'tts_api/v1/tts.proto';

const USAGE = `usage: node synthesize.js [--server HOST:PORT] [--voice NAME] [--speed X]
                          [--timeout SECONDS] --out FILE.wav TEXT

Speaks TEXT with a TextToSpeechService server and saves the audio as a WAV file.
  --server   server address (default: $TTS_SERVER, else localhost:50051)
  --voice    voice name, e.g. af_bella (default: the server's)
  --speed    speaking rate, 0.5 to 2.0 (default 1.0)
  --timeout  seconds the call may take (default 60)
  --out      the WAV file to write`;

function loadService() {
  const definition = protoLoader.loadSync(PROTO_FILE, {
    includeDirs: [PROTO_ROOT],
    keepCase: true, // field names as in the .proto: sample_rate_hertz, not sampleRateHertz
    enums: String,
    defaults: true,
  });
  return grpc.loadPackageDefinition(definition).tts_api.v1.TextToSpeechService;
}

function parse(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      server: { type: 'string', default: process.env.TTS_SERVER || 'localhost:50051' },
      voice: { type: 'string', default: '' },
      speed: { type: 'string', default: '1.0' },
      timeout: { type: 'string', default: '60' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (!values.out || positionals.length !== 1) {
    throw new Error('give --out FILE.wav and the text as one argument');
  }
  return { ...values, text: positionals[0] };
}

function synthesize(client, request, timeoutS) {
  const deadline = new Date(Date.now() + timeoutS * 1000);
  return new Promise((resolve, reject) => {
    client.Synthesize(request, { deadline }, (error, response) =>
      error ? reject(error) : resolve(response));
  });
}

async function main() {
  let options;
  try {
    options = parse(process.argv.slice(2));
  } catch (error) {
    console.error(`error: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  const TextToSpeechService = loadService();
  const client = new TextToSpeechService(options.server, grpc.credentials.createInsecure());
  try {
    const response = await synthesize(client, {
      text: options.text,
      config: {
        voice: options.voice,
        speed: Number(options.speed),
        encoding: 'AUDIO_ENCODING_WAV',
      },
    }, Number(options.timeout));
    fs.writeFileSync(options.out, response.audio);
    console.error(`wrote ${options.out}: ${response.audio_duration_seconds.toFixed(2)} s at ` +
                  `${response.sample_rate_hertz} Hz, voice ${response.voice}`);
    return 0;
  } catch (error) {
    // A gRPC failure carries its status code and the server's explanation.
    const code = error.code !== undefined ? grpc.status[error.code] : 'ERROR';
    console.error(`error: ${code}: ${error.details || error.message}`);
    return 1;
  } finally {
    client.close();
  }
}

main().then((status) => { process.exitCode = status; });
