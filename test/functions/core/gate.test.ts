import { decidePromotion, defaultPromotionRule } from '../../../functions/core/gate';
import { ManifestError } from '../../../functions/core/errors';

const champion = (metrics: Record<string, number>) => ({ version: '3', metrics });

describe('decidePromotion', () => {
  describe('minimum (higher is better)', () => {
    const rule = { metric: 'accuracy', minimum: 0.9 };
    test('pass: reaching the minimum exactly', () => {
      const d = decidePromotion(rule, { accuracy: 0.9 });
      expect(d.promote).toBe(true);
      expect(d.reason).toBe('No current version to beat; accuracy 0.9 meets the minimum 0.9.');
    });
    test('fail: just below it', () => {
      const d = decidePromotion(rule, { accuracy: 0.89 });
      expect(d.promote).toBe(false);
      expect(d.reason).toBe('accuracy 0.89 does not meet the minimum 0.9 (higher is better).');
    });
  });

  describe('minimum of an error metric (lower is better)', () => {
    const rule = { metric: 'mse', minimum: 0.5 };
    test('pass: at most the bound', () => {
      expect(decidePromotion(rule, { mse: 0.5 }).promote).toBe(true);
      expect(decidePromotion(rule, { mse: 0.1 }).lowerIsBetter).toBe(true);
    });
    test('fail: above the bound', () => {
      const d = decidePromotion(rule, { mse: 0.51 });
      expect(d.promote).toBe(false);
      expect(d.reason).toBe('mse 0.51 does not meet the maximum 0.5 (lower is better).');
    });
  });

  describe('must beat production by minImprovement (higher is better)', () => {
    const rule = { metric: 'accuracy', minImprovement: 0.01 };
    test('pass: an improvement of exactly the delta', () => {
      const d = decidePromotion(rule, { accuracy: 0.92 }, champion({ accuracy: 0.91 }));
      expect(d.promote).toBe(true);
      expect(d.reason).toBe('accuracy 0.92 vs 0.91 for version 3: improvement 0.01 >= 0.01 required (higher is better).');
    });
    test('fail: a smaller improvement', () => {
      const d = decidePromotion(rule, { accuracy: 0.915 }, champion({ accuracy: 0.91 }));
      expect(d.promote).toBe(false);
      expect(d.reason).toBe('accuracy 0.915 vs 0.91 for version 3: improvement 0.005, the rule requires an improvement of at least 0.01 (higher is better).');
    });
  });

  describe('must beat production (lower is better)', () => {
    const rule = { metric: 'mae', minImprovement: 0.1 };
    test('pass: error reduced by more than the delta', () => {
      expect(decidePromotion(rule, { mae: 0.8 }, champion({ mae: 1 })).promote).toBe(true);
    });
    test('fail: error reduced by less', () => {
      const d = decidePromotion(rule, { mae: 0.95 }, champion({ mae: 1 }));
      expect(d.promote).toBe(false);
      expect(d.reason).toMatch(/improvement 0\.05, the rule requires an improvement of at least 0\.1 \(lower is better\)/);
    });
  });

  describe('minImprovement 0: no worse than production', () => {
    const rule = { metric: 'f1Macro', minImprovement: 0 };
    test('pass: equal', () => {
      expect(decidePromotion(rule, { f1Macro: 0.8 }, champion({ f1Macro: 0.8 })).promote).toBe(true);
    });
    test('fail: worse', () => {
      const d = decidePromotion(rule, { f1Macro: 0.79 }, champion({ f1Macro: 0.8 }));
      expect(d.promote).toBe(false);
      expect(d.reason).toBe('f1Macro 0.79 vs 0.8 for version 3: worse, the rule requires no worse (higher is better).');
    });
  });

  describe('minimum and champion together', () => {
    const rule = { metric: 'r2', minimum: 0.5, minImprovement: 0 };
    test('pass: both hold', () => {
      const d = decidePromotion(rule, { r2: 0.7 }, champion({ r2: 0.6 }));
      expect(d.promote).toBe(true);
      expect(d.reason).toContain('and meets the minimum 0.5');
    });
    test('fail: beats production but misses the minimum', () => {
      expect(decidePromotion(rule, { r2: 0.45 }, champion({ r2: 0.3 })).promote).toBe(false);
    });
  });

  describe('cannot compare', () => {
    test('pass: a champion with the metric is compared', () => {
      expect(decidePromotion({ metric: 'accuracy' }, { accuracy: 0.9 }, champion({ accuracy: 0.8 })).promote).toBe(true);
    });
    test('fail: a champion without the metric keeps production', () => {
      const d = decidePromotion({ metric: 'accuracy' }, { accuracy: 0.9 }, champion({ loss: 0.1 }));
      expect(d.promote).toBe(false);
      expect(d.reason).toMatch(/^Version 3 has no accuracy to compare with; production is kept/);
    });
    test('fail: a non-finite challenger metric', () => {
      expect(decidePromotion({ metric: 'loss' }, { loss: NaN }).promote).toBe(false);
    });
  });

  test('an unknown metric name is a ManifestError naming it and the reported ones', () => {
    expect(() => decidePromotion({ metric: 'auc' }, { accuracy: 0.9, loss: 0.2 })).toThrow(ManifestError);
    expect(() => decidePromotion({ metric: 'auc' }, { accuracy: 0.9, loss: 0.2 })).toThrow(
      'promotion.metric: expected one of "accuracy", "loss" (the metrics this run reports), received "auc"',
    );
  });

  test('the default rule: the task\'s main metric, no minimum, no worse than production', () => {
    expect(defaultPromotionRule('classification')).toEqual({ metric: 'accuracy', minImprovement: 0, alias: 'production' });
    expect(defaultPromotionRule('regression')).toEqual({ metric: 'mse', minImprovement: 0, alias: 'production' });
    expect(decidePromotion(defaultPromotionRule('regression'), { mse: 2 }, champion({ mse: 1 })).promote).toBe(false);
    expect(decidePromotion(defaultPromotionRule('regression'), { mse: 1 }, champion({ mse: 2 })).promote).toBe(true);
  });
});
