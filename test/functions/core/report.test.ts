import { classificationMetrics, regressionMetrics, scalarMetrics } from '../../../functions/core/metrics';
import { escapeHtml, lineChart, parseHistory, renderReport, type ReportInput } from '../../../functions/core/report';

describe('parseHistory', () => {
  test('reads what functions/train writes: {epochs: [{epoch, loss, metrics}]}', () => {
    const points = parseHistory({ epochs: [{ epoch: 1, loss: 0.9, metrics: { acc: 0.6, val_loss: 1 }, samplesPerSecond: 900 }], backend: 'cpu' });
    expect(points).toEqual([{ epoch: 1, values: { loss: 0.9, acc: 0.6, val_loss: 1 } }]);
  });

  test('tolerates flat records, a bare array and the Keras {history: {...}} shape', () => {
    expect(parseHistory([{ loss: 2, val_loss: 3 }, { loss: 1, accuracy: 0.5 }])).toEqual([
      { epoch: 1, values: { loss: 2, val_loss: 3 } },
      { epoch: 2, values: { loss: 1, accuracy: 0.5 } },
    ]);
    expect(parseHistory({ history: { loss: [3, 2], acc: [0.1, 0.2] } })).toEqual([
      { epoch: 1, values: { loss: 3, acc: 0.1 } },
      { epoch: 2, values: { loss: 2, acc: 0.2 } },
    ]);
    expect(parseHistory(undefined)).toEqual([]);
    expect(parseHistory({ something: 'else' })).toEqual([]);
  });
});

describe('lineChart', () => {
  test('one path per series with one point per epoch, higher values drawn higher', () => {
    const svg = lineChart('loss', parseHistory([{ loss: 3 }, { loss: 2 }, { loss: 1 }]), ['loss', 'val_loss']);
    const d = /data-series="loss" d="([^"]+)"/.exec(svg)![1];
    const ys = d.split(' ').map((p) => Number(p.slice(1).split(',')[1]));
    expect(ys).toHaveLength(3);
    // SVG y grows downwards: a falling loss has increasing y.
    expect(ys[0]).toBeLessThan(ys[1]);
    expect(ys[1]).toBeLessThan(ys[2]);
    expect(svg).not.toContain('data-series="val_loss"');
  });

  test('no series present gives no chart', () => {
    expect(lineChart('acc', parseHistory([{ loss: 1 }]), ['acc'])).toBe('');
  });
});

describe('renderReport', () => {
  const classNames = ['cat', '<script>alert(1)</script>'];
  const metrics = classificationMetrics(Int32Array.from([0, 0, 1, 1]), Float32Array.from([0.9, 0.1, 0.2, 0.8, 0.3, 0.7, 0.4, 0.6]), classNames);
  const input: ReportInput = {
    runId: 'run-"1"',
    modelName: 'pets',
    task: 'classification',
    generatedAt: '2026-01-01T00:00:00.000Z',
    metrics,
    history: parseHistory({ epochs: [1, 2].map((epoch) => ({ epoch, loss: 1 / epoch, metrics: { acc: 0.4 * epoch, val_acc: 0.3 * epoch } })) }),
    decision: { promote: false, reason: 'accuracy 0.75 < 0.8 & more', metric: 'accuracy', lowerIsBetter: false },
    rule: { metric: 'accuracy', minimum: 0.8 },
    champion: { version: '2', metrics: { accuracy: 0.5 } },
    counts: { train: 10, validation: 2, test: 4 },
  };
  const html = renderReport(input, scalarMetrics(metrics));

  test('contains the curves, the confusion matrix and the numbers', () => {
    expect(html).toMatch(/<path class="series" data-series="loss" d="M[\d.]+,[\d.]+ L[\d.]+,[\d.]+"/);
    expect(html).toMatch(/<path class="series" data-series="acc" d="M[\d.]+,[\d.]+ L[\d.]+,[\d.]+"/);
    expect(html).toMatch(/<path class="series" data-series="val_acc" d="M[\d.]+,[\d.]+ L[\d.]+,[\d.]+"/);
    expect(html).toContain('<td>accuracy</td><td>0.7500</td><td>0.5000</td>');
    expect(html.match(/<rect class="cell"/g)).toHaveLength(4);
    expect(html).toMatch(/data-actual="0" data-predicted="1"[^>]*>.*?<\/rect>\s*<text[^>]*>1<\/text>/s);
    expect(html).toMatch(/data-actual="1" data-predicted="1"[^>]*>.*?<\/rect>\s*<text[^>]*>2<\/text>/s);
    expect(html).toContain('<tr><td>cat</td><td>1.0000</td><td>0.5000</td><td>0.6667</td><td>2</td></tr>');
    expect(html).toContain('train 10 · validation 2 · test 4 rows');
    expect(html).toContain('<strong>not promoted</strong>');
  });

  test('escapes every piece of text', () => {
    expect(html).not.toContain('<script>');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('run-&quot;1&quot;');
    expect(html).toContain('accuracy 0.75 &lt; 0.8 &amp; more');
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });

  test('regression has no confusion matrix, and a missing history says so', () => {
    const m = regressionMetrics(Float32Array.from([1, 2]), Float32Array.from([1, 3]));
    const page = renderReport({ ...input, task: 'regression', metrics: m, history: [], rule: { metric: 'mse' }, champion: undefined }, scalarMetrics(m));
    expect(page).not.toContain('class="confusion"');
    expect(page).toContain('No training history was found for this run.');
    expect(page).toContain('<td>mse</td><td>0.5000</td>');
  });
});
