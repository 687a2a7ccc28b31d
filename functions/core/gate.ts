/**
 * The promotion gate: a pure decision over the manifest's promotion rule, the challenger's
 * test metrics and, when there is one, the current production version's metrics.
 */
import type { Task } from './contracts';
import { ManifestError } from './errors';
import { MANIFEST_DEFAULTS, type PromotionRule } from './manifest';
import { LOWER_IS_BETTER } from './metrics';

export interface Champion {
  readonly version: string;
  readonly metrics: Record<string, number>;
}

export interface PromotionDecision {
  readonly promote: boolean;
  /** One sentence a person reads in the run's status and report. */
  readonly reason: string;
  readonly metric: string;
  readonly lowerIsBetter: boolean;
}

/**
 * The rule when the manifest has none: the task's main metric (accuracy, or mse for
 * regression), no minimum, and a challenger no worse than production (minImprovement 0).
 */
export function defaultPromotionRule(task: Task): Required<Pick<PromotionRule, 'metric' | 'minImprovement' | 'alias'>> {
  return { ...MANIFEST_DEFAULTS.promotion[task] };
}

const fmt = (v: number) => (Number.isInteger(v) ? String(v) : Number(v.toPrecision(6)).toString());

// Differences below this are float noise from serialising metrics through JSON, not a change.
const EPSILON = 1e-12;

/**
 * Promote when (1) the challenger reaches `rule.minimum` (at most it, for error metrics) and
 * (2) with a champion, the challenger beats it by at least `rule.minImprovement` (0: no worse).
 * A metric the challenger does not report is a ManifestError: the rule can never be decided.
 * A champion without that metric is not replaced: the comparison cannot be made, and replacing
 * production is the step that must never happen by accident.
 */
export function decidePromotion(rule: PromotionRule, challenger: Record<string, number>, champion?: Champion): PromotionDecision {
  const metric = rule.metric;
  const lowerIsBetter = LOWER_IS_BETTER.has(metric);
  const base = { metric, lowerIsBetter };
  if (!(metric in challenger)) {
    throw new ManifestError(
      `promotion.metric: expected one of ${Object.keys(challenger).map((m) => `"${m}"`).join(', ')} (the metrics this run reports), received "${metric}"`,
    );
  }
  const value = challenger[metric];
  if (!Number.isFinite(value)) return { ...base, promote: false, reason: `The challenger's ${metric} is ${value}, not a number that can be compared.` };
  const better = lowerIsBetter ? 'lower' : 'higher';
  if (rule.minimum !== undefined) {
    const meets = lowerIsBetter ? value <= rule.minimum + EPSILON : value >= rule.minimum - EPSILON;
    if (!meets) {
      return {
        ...base,
        promote: false,
        reason: `${metric} ${fmt(value)} does not meet the ${lowerIsBetter ? 'maximum' : 'minimum'} ${fmt(rule.minimum)} (${better} is better).`,
      };
    }
  }
  const meetsText = rule.minimum !== undefined ? ` meets the ${lowerIsBetter ? 'maximum' : 'minimum'} ${fmt(rule.minimum)}` : '';
  if (champion === undefined) {
    return { ...base, promote: true, reason: `No current version to beat; ${metric} ${fmt(value)}${meetsText || ' (no minimum set)'}.` };
  }
  const held = champion.metrics[metric];
  if (held === undefined || !Number.isFinite(held)) {
    return {
      ...base,
      promote: false,
      reason: `Version ${champion.version} has no ${metric} to compare with; production is kept. Promote by hand if the challenger should replace it.`,
    };
  }
  const gain = lowerIsBetter ? held - value : value - held;
  const needed = rule.minImprovement ?? 0;
  const compared = `${metric} ${fmt(value)} vs ${fmt(held)} for version ${champion.version}`;
  if (gain + EPSILON < needed) {
    const want = needed > 0 ? `an improvement of at least ${fmt(needed)}` : 'no worse';
    return { ...base, promote: false, reason: `${compared}: ${gain < 0 ? 'worse' : `improvement ${fmt(gain)}`}, the rule requires ${want} (${better} is better).` };
  }
  return {
    ...base,
    promote: true,
    reason: `${compared}: improvement ${fmt(gain)} >= ${fmt(needed)} required${meetsText ? `, and${meetsText}` : ''} (${better} is better).`,
  };
}
