#!/usr/bin/env node
// Speaks text while it is being written: sends it a few characters at a time, as an LLM
// streams its answer, over StreamingSynthesize, and writes the WAV stream that comes back.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { setTimeout: sleep } = require('node:timers/promises');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'protos');
const PROTO_FILE = 'tts_api/v1/tts.proto';

const USAGE = `usage: node stream_tokens.js [--server HOST:PORT] [--voice NAME]
                          [--token-chars N] [--token-ms MS] --out FILE.wav TEXT

Sends TEXT to a TextToSpeechService server N characters every MS milliseconds (default 4
every 30, like an LLM) and saves the audio, which starts before the text is finished.
  --server       server address (default: $TTS_SERVER, else localhost:50051)
  --voice        voice name, e.g. af_bella (default: the server's)
  --token-chars  characters per message (default 4)
  --token-ms     pause between messages in milliseconds (default 30)
  --out          the WAV file to write`;

function loadService() {
  const definition = protoLoader.loadSync(PROTO_FILE, {
    includeDirs: [PROTO_ROOT], keepCase: true, enums: String, defaults: true,
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
      'token-chars': { type: 'string', default: '4' },
      'token-ms': { type: 'string', default: '30' },
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
  const call = client.StreamingSynthesize();
  const started = Date.now();
  const chunks = [];
  const finished = new Promise((resolve, reject) => {
    call.on('data', (response) => {
      if (!response.chunk) return;
      chunks.push(response.chunk.audio);
      const span = response.chunk.text_span;
      if (span) {
        console.error(`${Date.now() - started} ms: ${span.text}`);
      }
    });
    call.on('end', resolve);
    call.on('error', reject);
  });
  try {
    // The first message carries only the settings; the text follows in pieces.
    call.write({ config: { voice: options.voice, encoding: 'AUDIO_ENCODING_WAV' } });
    const size = Number(options['token-chars']);
    for (let at = 0; at < options.text.length; at += size) {
      call.write({ text: options.text.slice(at, at + size) });
      await sleep(Number(options['token-ms']));
    }
    console.error(`${Date.now() - started} ms: (all text sent)`);
    call.end(); // half-close: the server speaks the rest, then ends the stream
    await finished;
    // The WAV stream's chunks, joined, are one file (its header says "length unknown").
    fs.writeFileSync(options.out, Buffer.concat(chunks));
    console.error(`wrote ${options.out}`);
    return 0;
  } catch (error) {
    const code = error.code !== undefined ? grpc.status[error.code] : 'ERROR';
    console.error(`error: ${code}: ${error.details || error.message}`);
    return 1;
  } finally {
    client.close();
  }
}

main().then((status) => { process.exitCode = status; });
