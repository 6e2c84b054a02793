var builder = WebApplication.CreateBuilder(args);
var app = builder.Build();
app.MapGet("/v2/health/live", () => Results.Ok());
app.Run();

public partial class Program;
