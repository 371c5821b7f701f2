// Java HdrHistogram (the reference implementation) as the judge of infbench's percentiles.
//
//   java -cp /usr/share/java/hdrhistogram.jar tests/reference/Percentiles.java HIGHEST < input
//
// Input: the first line lists percentiles; every further line is one sample of values
// (microseconds, space-separated). For each sample the program records its values into
// org.HdrHistogram.Histogram(1, HIGHEST, 3) -- infbench's layout (DESIGN section 7) -- and prints
// one line: getValueAtPercentile for each percentile, space-separated, in the order given.
// tests/unit/test_percentile.py runs it and compares infbench's results with these.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import org.HdrHistogram.Histogram;

public class Percentiles {
    public static void main(String[] args) throws Exception {
        long highest = Long.parseLong(args[0]);
        BufferedReader in =
                new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String first = in.readLine();
        if (first == null) {
            throw new IllegalArgumentException("no percentiles line");
        }
        String[] fields = first.trim().split("\\s+");
        double[] percentiles = new double[fields.length];
        for (int i = 0; i < fields.length; i++) {
            percentiles[i] = Double.parseDouble(fields[i]);
        }
        StringBuilder out = new StringBuilder();
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) {
                continue;
            }
            Histogram histogram = new Histogram(1, highest, 3);
            for (String value : line.trim().split("\\s+")) {
                histogram.recordValue(Long.parseLong(value));
            }
            for (int i = 0; i < percentiles.length; i++) {
                out.append(i == 0 ? "" : " ").append(histogram.getValueAtPercentile(percentiles[i]));
            }
            out.append('\n');
        }
        System.out.print(out);
    }
}
