package org.apache.beam.runners.core;

import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.coders.IterableCoder;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.SetCoder;
import org.apache.beam.sdk.coders.VarLongCoder;
import org.apache.beam.sdk.state.CombiningState;
import org.apache.beam.sdk.state.ValueState;
import org.apache.beam.sdk.transforms.Combine;
import org.apache.beam.sdk.transforms.Materializations;
import org.apache.beam.sdk.transforms.ViewFn;
import org.apache.beam.sdk.transforms.windowing.BoundedWindow;
import org.apache.beam.sdk.transforms.windowing.PaneInfo;
import org.apache.beam.sdk.util.construction.RunnerPCollectionView;
import org.apache.beam.sdk.values.PCollectionView;
import org.apache.beam.sdk.values.WindowedValue;
import org.apache.beam.sdk.values.WindowedValues;

/**
 * Replacement for {@code org.apache.beam.runners.core.SideInputHandler} of Beam 2.70.0
 * (beam-runners-core-java, also bundled in beam-sdks-java-harness), with the same public API,
 * state names and behaviour, except for the coder of the side-input contents state and for
 * forgetting windows that have expired.
 *
 * <p><b>Why it exists.</b> Flink's streaming {@code DoFnOperator} (and so the portable
 * {@code ExecutableStageDoFnOperator}) keeps side-input data in this handler, backed by
 * {@code FlinkBroadcastStateInternals}, i.e. Flink operator list state whose serializer is built
 * from the coder of the state tag. Beam's handler declares the contents of a side input, per
 * window, as {@code IterableCoder.of(view.getCoderInternal())}: correct for the Java SDK's own
 * views, whose coder is the coder of one element. But the portable streaming translator
 * ({@code FlinkStreamingPortablePipelineTranslator.getSideInputIdToPCollectionViewMap}) builds
 * each view as a {@link RunnerPCollectionView} whose coder is
 * {@code WindowedValueCoder<Iterable<element>>}, while {@code addSideInputValue} stores the plain
 * elements (the grouped {@code Iterable<element>}). The heap operator state never encodes them
 * while the job runs, so nothing fails until a checkpoint: the synchronous part of the snapshot
 * deep-copies the list state through the coder ({@code CoderTypeSerializer.copy} ->
 * {@code MapCoder} -> {@code IterableCoder} -> {@code FullWindowedValueCoder.encode}), which
 * casts an element ({@code byte[]} for Python-coded elements, {@code Long} for a count) to
 * {@code WindowedValue}: {@code ClassCastException}, checkpoint declined, task failed, job
 * restarted at every checkpoint once a side input has data.
 *
 * <p><b>The fix.</b> For a {@link RunnerPCollectionView} (only runners build these, from a
 * pipeline proto) whose coder is a {@code WindowedValueCoder} of an {@code IterableCoder}, the
 * contents state uses that iterable's element coder, which is the coder of the stored elements
 * (the same coder the side-input stream itself is encoded with). Every other view keeps Beam's
 * coder, so non-portable pipelines are unaffected. The state names are unchanged.
 *
 * <p><b>Forgetting expired windows.</b> Beam's handler never releases a side-input window: the
 * Flink {@code DoFnOperator} never tells it that the watermark has passed one, so a windowed
 * side input (one element per slot in this project) grows the operator state, and every
 * checkpoint, for as long as the job runs (docs/state.md describes the upstream bug). This
 * handler follows the side input's own progress instead: a pane whose timing is ON_TIME or
 * LATE proves that the side input's grouping watermark has passed that window's end, so
 * every window whose end plus the view's allowed lateness lies before the newest such end can
 * no longer be read by an on-time main-input element, and its contents and ready mark are
 * cleared. A main-input element that still arrives for an expired window (it is later than
 * the side input's allowed lateness) finds it ready and empty instead of waiting for ever.
 *
 * <p>Delete this class when Beam is upgraded to a version whose portable Flink runner declares
 * side-input state with the element coder; check with a streaming job with a side input and
 * {@code --checkpointing_interval}.
 */
public class SideInputHandler implements ReadyCheckingSideInputReader {

  private static final Set<String> HANDLED_MATERIALIZATIONS =
      Set.of(
          Materializations.ITERABLE_MATERIALIZATION_URN,
          Materializations.MULTIMAP_MATERIALIZATION_URN);

  /** The side inputs this handler serves (protected as in Beam's class). */
  protected final Collection<PCollectionView<?>> sideInputs;

  private final StateInternals stateInternals;

  /** Per view, its state; looked up by identity first (see viewState). */
  private final Map<PCollectionView<?>, ViewState> viewStates = new HashMap<>();

  private final Map<PCollectionView<?>, ViewState> viewStatesByIdentity = new IdentityHashMap<>();

  public SideInputHandler(Collection<PCollectionView<?>> sideInputs, StateInternals stateInternals) {
    this.sideInputs = sideInputs;
    this.stateInternals = stateInternals;
    for (PCollectionView<?> view : sideInputs) {
      String urn = view.getViewFn().getMaterialization().getUrn();
      if (!HANDLED_MATERIALIZATIONS.contains(urn)) {
        throw new IllegalArgumentException(
            String.format(
                "This handler is only capable of dealing with %s materializations but was asked"
                    + " to handle %s for PCollectionView with tag %s.",
                HANDLED_MATERIALIZATIONS, urn, view.getTagInternal().getId()));
      }
      ViewState state = new ViewState(view, stateInternals);
      viewStates.put(view, state);
      viewStatesByIdentity.put(view, state);
    }
  }

  /**
   * The state of a view. The runner asks isReady for every main-input element, also again for
   * each one held back whenever a side input arrives; a {@code RunnerPCollectionView} hashes its
   * windowing strategy and coder, and each state lookup built a Flink state descriptor, so the
   * per-view state cells are made once and found by identity.
   */
  private ViewState viewState(PCollectionView<?> view) {
    ViewState state = viewStatesByIdentity.get(view);
    if (state == null) {
      state = viewStates.get(view);
      viewStatesByIdentity.put(view, state);
    }
    return state;
  }

  /** A view's state cells (global namespace) and the tag of its per-window contents. */
  private static final class ViewState {
    /** The windows for which the side input has arrived. */
    final CombiningState<BoundedWindow, Set<BoundedWindow>, Set<BoundedWindow>> ready;

    /**
     * The largest end (max timestamp, ms) of a window whose side input came in an ON_TIME or
     * LATE pane: a lower bound of the side input's watermark.
     */
    final ValueState<Long> watermark;

    /** The elements of the side input (window namespace). */
    final StateTag<ValueState<Iterable<?>>> contents;

    final Coder<? extends BoundedWindow> windowCoder;
    final long allowedLatenessMillis;

    @SuppressWarnings({"unchecked", "rawtypes"})
    ViewState(PCollectionView<?> view, StateInternals stateInternals) {
      String id = view.getTagInternal().getId();
      windowCoder = view.getWindowingStrategyInternal().getWindowFn().windowCoder();
      allowedLatenessMillis = view.getWindowingStrategyInternal().getAllowedLateness().getMillis();
      ready =
          stateInternals.state(
              StateNamespaces.global(),
              StateTags.combiningValue(
                  "side-input-available-windows-" + id,
                  SetCoder.of((Coder<BoundedWindow>) windowCoder),
                  new WindowUnion()));
      watermark =
          stateInternals.state(
              StateNamespaces.global(),
              StateTags.value("side-input-watermark-" + id, VarLongCoder.of()));
      contents =
          (StateTag)
              StateTags.value(
                  "side-input-data-" + id, IterableCoder.of(storedElementCoder(view)));
    }

    /**
     * Whether no on-time element can read {@code window} any more: its end plus the allowed
     * lateness lies before {@code watermarkMillis}.
     */
    boolean isExpired(BoundedWindow window, long watermarkMillis) {
      long end = window.maxTimestamp().getMillis();
      return end < watermarkMillis && watermarkMillis - end > allowedLatenessMillis;
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    StateNamespace namespace(BoundedWindow window) {
      return StateNamespaces.window((Coder) windowCoder, window);
    }
  }

  /**
   * The coder of one element as this handler stores it: for a portable view (a runner-built
   * {@code RunnerPCollectionView} with coder {@code WindowedValueCoder<Iterable<E>>}) the coder of
   * {@code E}; otherwise the view's own coder, as in Beam.
   */
  static Coder<?> storedElementCoder(PCollectionView<?> view) {
    Coder<?> coder = view.getCoderInternal();
    if (view instanceof RunnerPCollectionView && coder instanceof WindowedValues.WindowedValueCoder) {
      Coder<?> valueCoder = ((WindowedValues.WindowedValueCoder<?>) coder).getValueCoder();
      if (valueCoder instanceof IterableCoder) {
        return ((IterableCoder<?>) valueCoder).getElemCoder();
      }
    }
    return coder;
  }

  /**
   * Stores the side input's elements for each of the value's windows and marks them ready; a
   * pane past the end of its window also forgets the windows that have expired since.
   */
  public void addSideInputValue(PCollectionView<?> sideInput, WindowedValue<Iterable<?>> value) {
    ViewState state = viewState(sideInput);
    long newestEnd = Long.MIN_VALUE;
    for (BoundedWindow window : value.getWindows()) {
      stateInternals.state(state.namespace(window), state.contents).write(value.getValue());
      state.ready.add(window);
      newestEnd = Math.max(newestEnd, window.maxTimestamp().getMillis());
    }
    PaneInfo.Timing timing = value.getPaneInfo().getTiming();
    if (timing == PaneInfo.Timing.ON_TIME || timing == PaneInfo.Timing.LATE) {
      advanceWatermark(state, newestEnd);
    }
  }

  /** Raises the view's watermark bound to {@code endMillis} and forgets what expired. */
  private void advanceWatermark(ViewState state, long endMillis) {
    Long current = state.watermark.read();
    if (current != null && current >= endMillis) {
      return;
    }
    state.watermark.write(endMillis);
    Set<BoundedWindow> readyWindows = state.ready.read();
    if (readyWindows == null) {
      return;
    }
    Set<BoundedWindow> expired =
        readyWindows.stream()
            .filter(window -> state.isExpired(window, endMillis))
            .collect(Collectors.toSet());
    if (expired.isEmpty()) {
      return;
    }
    Set<BoundedWindow> kept = new HashSet<>(readyWindows);
    kept.removeAll(expired);
    for (BoundedWindow window : expired) {
      stateInternals.state(state.namespace(window), state.contents).clear();
    }
    state.ready.clear();
    state.ready.addAccum(kept);
  }

  @Override
  @SuppressWarnings({"unchecked", "rawtypes"})
  public <T> T get(PCollectionView<T> view, BoundedWindow window) {
    Iterable<?> elements = getIterable(view, window);
    String urn = view.getViewFn().getMaterialization().getUrn();
    if (Materializations.ITERABLE_MATERIALIZATION_URN.equals(urn)) {
      ViewFn<Materializations.IterableView, T> viewFn = (ViewFn) view.getViewFn();
      Materializations.IterableView<?> iterableView = () -> (Iterable) elements;
      return viewFn.apply(iterableView);
    }
    if (Materializations.MULTIMAP_MATERIALIZATION_URN.equals(urn)) {
      ViewFn<Materializations.MultimapView, T> viewFn = (ViewFn) view.getViewFn();
      Coder keyCoder = ((KvCoder) storedElementCoder(view)).getKeyCoder();
      return viewFn.apply(
          InMemoryMultimapSideInputView.fromIterable(keyCoder, (Iterable) elements));
    }
    throw new IllegalStateException(
        String.format("Unknown side input materialization format requested '%s'", urn));
  }

  /** The stored elements of {@code view} in {@code window}, empty if none arrived. */
  public <T> Iterable<?> getIterable(PCollectionView<T> view, BoundedWindow window) {
    ViewState state = viewState(view);
    Iterable<?> elements = stateInternals.state(state.namespace(window), state.contents).read();
    return elements != null ? elements : Collections.emptyList();
  }

  @Override
  public boolean isReady(PCollectionView<?> sideInput, BoundedWindow window) {
    ViewState state = viewState(sideInput);
    Set<BoundedWindow> ready = state.ready.read();
    if (ready != null && ready.contains(window)) {
      return true;
    }
    // An expired window was forgotten (or never came): waiting for it would hold the element,
    // and the watermark behind it, for ever.
    Long watermark = state.watermark.read();
    return watermark != null && state.isExpired(window, watermark);
  }

  /** The windows of {@code view} held now (for tests). */
  Set<BoundedWindow> readyWindows(PCollectionView<?> view) {
    Set<BoundedWindow> ready = viewState(view).ready.read();
    return ready != null ? ready : Collections.emptySet();
  }

  @Override
  public <T> boolean contains(PCollectionView<T> view) {
    return sideInputs.contains(view);
  }

  @Override
  public boolean isEmpty() {
    return sideInputs.isEmpty();
  }

  /** Accumulates the set of windows seen. */
  private static class WindowUnion
      extends Combine.CombineFn<BoundedWindow, Set<BoundedWindow>, Set<BoundedWindow>> {
    @Override
    public Set<BoundedWindow> createAccumulator() {
      return new HashSet<>();
    }

    @Override
    public Set<BoundedWindow> addInput(Set<BoundedWindow> windows, BoundedWindow window) {
      windows.add(window);
      return windows;
    }

    @Override
    public Set<BoundedWindow> mergeAccumulators(Iterable<Set<BoundedWindow>> accumulators) {
      Set<BoundedWindow> union = new HashSet<>();
      accumulators.forEach(union::addAll);
      return union;
    }

    @Override
    public Set<BoundedWindow> extractOutput(Set<BoundedWindow> windows) {
      return windows;
    }
  }
}
