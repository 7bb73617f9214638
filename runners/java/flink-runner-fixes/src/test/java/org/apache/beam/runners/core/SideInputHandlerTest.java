package org.apache.beam.runners.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.apache.beam.sdk.coders.ByteArrayCoder;
import org.apache.beam.sdk.coders.IterableCoder;
import org.apache.beam.sdk.transforms.Materialization;
import org.apache.beam.sdk.transforms.Materializations;
import org.apache.beam.sdk.transforms.ViewFn;
import org.apache.beam.sdk.transforms.windowing.FixedWindows;
import org.apache.beam.sdk.transforms.windowing.IntervalWindow;
import org.apache.beam.sdk.transforms.windowing.PaneInfo;
import org.apache.beam.sdk.util.construction.RunnerPCollectionView;
import org.apache.beam.sdk.values.PCollectionView;
import org.apache.beam.sdk.values.TupleTag;
import org.apache.beam.sdk.values.TypeDescriptor;
import org.apache.beam.sdk.values.WindowedValue;
import org.apache.beam.sdk.values.WindowedValues;
import org.apache.beam.sdk.values.WindowingStrategy;
import org.joda.time.Duration;
import org.joda.time.Instant;
import org.junit.Test;

/**
 * The handler as the portable Flink runner feeds it: one side-input element per 5 s slot, first
 * in an EARLY pane, then in the ON_TIME pane when the side input's watermark passes the slot.
 */
public class SideInputHandlerTest {

  private static final long PERIOD_MS = 5_000;
  private static final long LATENESS_MS = 35_000;

  /** A runner-built view of byte[] elements in 5 s fixed windows with 35 s allowed lateness. */
  @SuppressWarnings({"unchecked", "rawtypes"})
  private static PCollectionView<List<byte[]>> slotView() {
    FixedWindows slots = FixedWindows.of(Duration.millis(PERIOD_MS));
    WindowingStrategy<?, ?> strategy =
        WindowingStrategy.of(slots).withAllowedLateness(Duration.millis(LATENESS_MS));
    return new RunnerPCollectionView(
        null,
        new TupleTag<>("slots"),
        (ViewFn) new ListViewFn(),
        slots.getDefaultWindowMappingFn(),
        strategy,
        WindowedValues.getFullCoder(
            IterableCoder.of(ByteArrayCoder.of()), slots.windowCoder()));
  }

  private static IntervalWindow slot(long index) {
    return new IntervalWindow(new Instant(index * PERIOD_MS), new Instant((index + 1) * PERIOD_MS));
  }

  private static void add(
      SideInputHandler handler, PCollectionView<?> view, long index, PaneInfo.Timing timing) {
    IntervalWindow window = slot(index);
    PaneInfo pane =
        timing == PaneInfo.Timing.EARLY
            ? PaneInfo.createPane(true, false, timing, 0, 0)
            : PaneInfo.createPane(false, true, timing, 1, 0);
    Iterable<?> elements = Collections.singletonList(new byte[] {(byte) index});
    handler.addSideInputValue(
        view, WindowedValues.of(elements, window.start(), Collections.singleton(window), pane));
  }

  private static SideInputHandler handlerFor(PCollectionView<?> view) {
    return new SideInputHandler(
        Collections.singletonList(view), InMemoryStateInternals.forKey(null));
  }

  @Test
  public void forgetsWindowsOnceTheirAllowedLatenessHasPassed() {
    PCollectionView<List<byte[]>> view = slotView();
    SideInputHandler handler = handlerFor(view);
    long slots = 20;
    for (long i = 0; i < slots; i++) {
      add(handler, view, i, PaneInfo.Timing.EARLY);
      add(handler, view, i, PaneInfo.Timing.ON_TIME);
    }
    // The newest ON_TIME pane ends slot 19 (at 100 s): slots ending more than 35 s earlier are
    // gone, the others still hold their element.
    long newestEnd = slot(slots - 1).maxTimestamp().getMillis();
    for (long i = 0; i < slots; i++) {
      boolean expired = newestEnd - slot(i).maxTimestamp().getMillis() > LATENESS_MS;
      List<byte[]> value = handler.get(view, slot(i));
      assertEquals("slot " + i, expired ? 0 : 1, value.size());
      assertEquals("slot " + i, !expired, handler.readyWindows(view).contains(slot(i)));
    }
    assertEquals(LATENESS_MS / PERIOD_MS + 1, handler.readyWindows(view).size());
  }

  @Test
  public void earlyPanesAloneForgetNothing() {
    PCollectionView<List<byte[]>> view = slotView();
    SideInputHandler handler = handlerFor(view);
    for (long i = 0; i < 100; i++) {
      add(handler, view, i, PaneInfo.Timing.EARLY);
    }
    assertEquals(100, handler.readyWindows(view).size());
    assertEquals(1, handler.get(view, slot(0)).size());
  }

  @Test
  public void stateStaysBoundedOverAWeekOfSlots() {
    PCollectionView<List<byte[]>> view = slotView();
    SideInputHandler handler = handlerFor(view);
    long week = 7L * 24 * 3600 * 1000 / PERIOD_MS;
    for (long i = 0; i < week; i++) {
      add(handler, view, i, PaneInfo.Timing.EARLY);
      add(handler, view, i, PaneInfo.Timing.ON_TIME);
    }
    assertTrue(handler.readyWindows(view).size() <= LATENESS_MS / PERIOD_MS + 1);
    assertTrue(handler.get(view, slot(0)).isEmpty());
    assertEquals(1, handler.get(view, slot(week - 1)).size());
  }

  @Test
  public void aLateMainInputFindsAnExpiredWindowReadyAndEmpty() {
    PCollectionView<List<byte[]>> view = slotView();
    SideInputHandler handler = handlerFor(view);
    long far = 2 * LATENESS_MS / PERIOD_MS;
    assertFalse(handler.isReady(view, slot(0)));
    add(handler, view, far, PaneInfo.Timing.ON_TIME);
    // Slot 0 never came, but it can no longer come on time: waiting would stall the operator.
    assertTrue(handler.isReady(view, slot(0)));
    assertTrue(handler.get(view, slot(0)).isEmpty());
    // A slot within the allowed lateness still waits for its element.
    assertFalse(handler.isReady(view, slot(far - 1)));
  }

  /** The iterable materialization as a list. */
  private static class ListViewFn
      extends ViewFn<Materializations.IterableView<byte[]>, List<byte[]>> {
    @Override
    public Materialization<Materializations.IterableView<byte[]>>
        getMaterialization() {
      return Materializations.iterable();
    }

    @Override
    public List<byte[]> apply(Materializations.IterableView<byte[]> view) {
      List<byte[]> out = new ArrayList<>();
      view.get().forEach(out::add);
      return out;
    }

    @Override
    public TypeDescriptor<List<byte[]>> getTypeDescriptor() {
      return new TypeDescriptor<List<byte[]>>() {};
    }
  }
}
