// ONNX Runtime's side of bench/onnx_bench.sh: times session.run of each
// exported encoder and of its Identity twin at batch 1 and 256 (CPU, one
// intra-op thread), median of per-call times after a warm-up, and prints
// "ort NAME BATCH MEDIAN_US IDENTITY_US" lines.
// Usage: node onnx_bench.js DIR   (NODE_PATH must reach onnxruntime-node)
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

const dir = process.argv[2];
const raw = fs.readFileSync(path.join(dir, 'input.bin'));
const x = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));

async function median(file, batch) {
  const s = await ort.InferenceSession.create(file, {
    executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const dims = s.inputMetadata[0].shape.map((d, i) => (i === 0 ? batch : d));
  const feeds = { input: new ort.Tensor('float32', x.subarray(0, batch * 784), dims) };
  for (let i = 0; i < 20; i++) await s.run(feeds);
  const t = [];
  const start = process.hrtime.bigint();
  while (t.length < 50 || Number(process.hrtime.bigint() - start) < 5e8) {
    const a = process.hrtime.bigint();
    await s.run(feeds);
    t.push(Number(process.hrtime.bigint() - a) / 1e3);
  }
  t.sort((p, q) => p - q);
  return t[t.length >> 1];
}

async function main() {
  for (const name of ['dense_a', 'conv_seed']) {
    for (const batch of [1, 256]) {
      const m = await median(path.join(dir, `${name}.onnx`), batch);
      const id = await median(path.join(dir, `${name}_identity.onnx`), batch);
      console.log(`ort ${name} ${batch} ${m.toFixed(3)} ${id.toFixed(3)}`);
    }
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
