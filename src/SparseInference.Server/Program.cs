using SparseInference.Serving.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.Logging.AddSparseInferenceLogging(builder.Configuration);
builder.Services.AddSparseInference(builder.Configuration);
builder.Services.AddSparseInferenceTracing(builder.Configuration);

var app = builder.Build();
app.MapSparseInference();
app.Run();

public partial class Program;
